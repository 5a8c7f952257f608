#!/usr/bin/env bash
# Write throughput of single-row autocommit transactions measured with pgbench (no .NET driver in
# the path), side by side on one throwaway durable cluster: an untracked table, and the same table
# tracked by PgEvents at two schema versions (default: 4 and the latest in sql/). Each cell runs
# ROUNDS times; a round runs the designs back to back in an order rotated from round to round.
#
#   benchmarks/pgbench/write-versions.sh [baseline-version [candidate-version]] > result.md
#   SECONDS_PER_CELL=8 ROUNDS=3 CLIENTS="1 4 16" benchmarks/pgbench/write-versions.sh 4
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE_VERSION="${1:-4}"
LATEST="${2:-$(ls sql/*.sql | sed -E 's#.*/0*([0-9]+)_.*#\1#' | sort -n | tail -1)}"
SECONDS_PER_CELL="${SECONDS_PER_CELL:-8}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-1 4 16}"
PGBIN=$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")")
DIR=$(mktemp -d /tmp/pgevents-pgbench.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
RUN=""
if [ "$(id -u)" -eq 0 ]; then chown postgres "$DIR"; RUN="runuser -u postgres --"; fi
cleanup() { $RUN "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT

$RUN "$PGBIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
$RUN "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start \
  -o "-p $PORT -k $DIR -c listen_addresses='' -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB -c max_connections=100" >/dev/null
PSQL=("$PGBIN/psql" -h "$DIR" -p "$PORT" -U postgres -qAtX -v ON_ERROR_STOP=1)

# Renders the embedded scripts the way the installer does (fixed names; no user input involved).
render() { sed -e 's/__SCHEMA__/pgevents/g' -e 's/__TXKEY__/pgevents.tx_bench/g' -e 's/__COMMITLOCK__/1234567/g' -e 's/__SLEEPCLASS__/1348945270/g' -e 's/__SLEEPKEY__/7654321/g' "$1"; }

make_db() { # name version(0 = untracked)
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $1"
  "${PSQL[@]}" -d "$1" -c "CREATE TABLE bench (id bigint PRIMARY KEY, payload text NOT NULL);
    INSERT INTO bench SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g"
  if [ "$2" -gt 0 ]; then
    "${PSQL[@]}" -d "$1" -c "CREATE SCHEMA pgevents"
    for v in $(seq 1 "$2"); do render "$(ls sql/$(printf '%03d' "$v")_*.sql)" | "${PSQL[@]}" -1 -d "$1" >/dev/null; done
    "${PSQL[@]}" -d "$1" -c "INSERT INTO pgevents.settings (schema_name, channel, trigger_prefix) VALUES ('pgevents', 'pgevents', 'pgevents');
      SELECT pgevents.track_table('bench')" >/dev/null
  fi
  "${PSQL[@]}" -d "$1" -c "VACUUM ANALYZE" -c "CHECKPOINT"
}

make_db plain 0
make_db v$BASE_VERSION "$BASE_VERSION"
make_db v$LATEST "$LATEST"
DESIGNS=(plain v$BASE_VERSION v$LATEST)

cat > "$DIR/insert.sql" <<'SQL'
INSERT INTO bench VALUES (:client_id::bigint * 100000000 + 10000 + nextval('ids'), repeat('y', 100));
SQL
cat > "$DIR/update.sql" <<'SQL'
\set id random(1, 10000)
UPDATE bench SET payload = md5(random()::text) || repeat('z', 68) WHERE id = :id;
SQL
for d in "${DESIGNS[@]}"; do "${PSQL[@]}" -d "$d" -c "CREATE SEQUENCE IF NOT EXISTS ids"; done

declare -A TPS
for round in $(seq 1 "$ROUNDS"); do
  for op in insert update; do
    for c in $CLIENTS; do
      n=${#DESIGNS[@]}
      for i in $(seq 0 $((n - 1))); do
        d=${DESIGNS[$(( (i + round) % n ))]}
        tps=$("$PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -c "$c" -j "$c" -T "$SECONDS_PER_CELL" -f "$DIR/$op.sql" "$d" 2>/dev/null \
              | sed -nE 's/^tps = ([0-9.]+) .*/\1/p')
        TPS["$op,$c,$d,$round"]=$tps
        echo "round $round $op c=$c $d: $tps tps" >&2
      done
    done
  done
done

# A design that captured nothing would be a broken benchmark, not a fast one.
for d in v$BASE_VERSION v$LATEST; do
  captured=$("${PSQL[@]}" -d "$d" -c "SELECT count(*) FROM pgevents.events e JOIN pgevents.transactions t USING (xid)")
  [ "$captured" -gt 0 ] || { echo "$d captured no committed events" >&2; exit 1; }
  echo "$d: $captured committed events captured" >&2
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
echo "pgbench, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=on, synchronous_commit=on, ${SECONDS_PER_CELL} s per cell, $ROUNDS rotated rounds, no listener."
echo
echo "| op | writers | untracked tps | v$BASE_VERSION tps | v$LATEST tps | v$LATEST ÷ v$BASE_VERSION (median, range) | v$LATEST ÷ untracked |"
echo "|---|---|---|---|---|---|---|"
for op in insert update; do
  for c in $CLIENTS; do
    row=()
    for d in "${DESIGNS[@]}"; do
      row+=("$(for r in $(seq 1 "$ROUNDS"); do echo "${TPS[$op,$c,$d,$r]}"; done | median)")
    done
    ratios=$(for r in $(seq 1 "$ROUNDS"); do awk -v a="${TPS[$op,$c,v$LATEST,$r]}" -v b="${TPS[$op,$c,v$BASE_VERSION,$r]}" 'BEGIN {printf "%.3f\n", a / b}'; done)
    rmed=$(echo "$ratios" | median); rmin=$(echo "$ratios" | sort -g | head -1); rmax=$(echo "$ratios" | sort -g | tail -1)
    vsplain=$(awk -v a="${row[2]}" -v b="${row[0]}" 'BEGIN {printf "%.2f", a / b}')
    printf '| %s | %s | %.0f | %.0f | %.0f | %.2f (%.2f–%.2f) | %s |\n' "$op" "$c" "${row[0]}" "${row[1]}" "${row[2]}" "$rmed" "$rmin" "$rmax" "$vsplain"
  done
done
