#!/usr/bin/env bash
# Where the server time of a tracked single-row transaction goes (issue #11: "find where the time
# goes"). No client and no disk wait: each design runs a DO block that inserts (or updates) one row
# and commits, N times, on a cluster with synchronous_commit=off, so the figure is the server's own
# time per transaction. Designs, each in its own database, in rotated rounds:
#   plain      the table with no trigger
#   trigger    the capture triggers calling a function that returns at once (the cost of firing)
#   capture    the latest schema's capture with its commit phase disabled (one event row per change)
#   nojson     the latest schema with the row images left out of the event row
#   tracked    the latest schema as installed
#   previous   the version before it (BASE_VERSION to choose another), tracked the same way
#
#   benchmarks/pgbench/capture-cost.sh > benchmarks/results/capture-cost.md
set -euo pipefail
cd "$(dirname "$0")/../.."
EXTRA_SERVER_OPTIONS="-c synchronous_commit=off"
ROUNDS="${ROUNDS:-5}"
source benchmarks/pgbench/common.sh
N="${N:-20000}"

BASE_VERSION="${BASE_VERSION:-$((LATEST_VERSION - 1))}"
make_db plain
for d in trigger capture nojson tracked; do make_db "$d" "$LATEST_VERSION"; done
make_db previous "$BASE_VERSION"
"${PSQL[@]}" -d trigger -c "CREATE OR REPLACE FUNCTION pgevents.capture_row() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NULL; END \$\$"
"${PSQL[@]}" -d capture -c "ALTER TABLE pgevents.events DISABLE TRIGGER assign_position"
# The same function with both images replaced by NULL.
"${PSQL[@]}" -d nojson -c "SELECT pg_get_functiondef('pgevents.capture_row'::regproc)" \
  | sed -e 's/to_jsonb(NEW)/NULL::jsonb/g' -e 's/to_jsonb(OLD)/NULL::jsonb/g' | "${PSQL[@]}" -d nojson >/dev/null

designs=(plain trigger capture nojson tracked previous)
declare -A US
for round in $(seq 1 "$ROUNDS"); do
  for op in insert update; do
    for i in "${!designs[@]}"; do
      d=${designs[$(( (i + round) % ${#designs[@]} ))]}
      "${PSQL[@]}" -d "$d" -c "CHECKPOINT" >/dev/null
      if [ "$op" = insert ]; then
        body="INSERT INTO bench VALUES ($round * 10000000 + i, repeat('y', 100));"
      else
        # A new payload every round: an update that changes nothing is not captured.
        body="UPDATE bench SET payload = md5($round || ':' || i) || repeat('z', 68) WHERE id = 1 + (i * 7919) % 10000;"
      fi
      ms=$("${PSQL[@]}" -d "$d" -c '\timing on' -c "DO \$\$ BEGIN FOR i IN 1..$N LOOP $body COMMIT; END LOOP; END \$\$" \
           | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p')
      US["$op,$d,$round"]=$(awk -v ms="$ms" -v n="$N" 'BEGIN {printf "%.1f", ms * 1000 / n}')
      echo "round $round $op $d: ${US[$op,$d,$round]} µs" >&2
    done
  done
done

cell() { for r in $(seq 1 "$ROUNDS"); do echo "${US[$1,$2,$r]}"; done | median; }
echo "Server time per single-row transaction, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), synchronous_commit=off, schema version $LATEST_VERSION, $N transactions per cell, median of $ROUNDS rotated rounds (µs)"
echo
echo "| op | plain | trigger fires, does nothing | capture, no commit phase | full, no row images | full | full − plain | of which commit phase | of which row images | version $BASE_VERSION |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for op in insert update; do
  p=$(cell $op plain); t=$(cell $op trigger); c=$(cell $op capture); j=$(cell $op nojson); f=$(cell $op tracked); b=$(cell $op previous)
  printf '| %s | %s | %s | %s | %s | %s | %.1f | %.1f | %.1f | %s |\n' "$op" "$p" "$t" "$c" "$j" "$f" \
    "$(echo "$f - $p" | bc)" "$(echo "$f - $c" | bc)" "$(echo "$f - $j" | bc)" "$b"
done
