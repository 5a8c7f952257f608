#!/usr/bin/env bash
# Write throughput of single-row autocommit transactions measured with pgbench (no .NET driver in
# the writers' path), side by side on one throwaway durable cluster with wal_level=logical:
#   plain     the table with no trigger (the floor)
#   pgevents  the table tracked by the schema in sql/, with a PgEvents consumer running as in
#             production (benchmarks/PgEvents.Benchmarks --consume, a no-op handler)
#   slot      the plain table with a logical replication slot streamed by pg_recvlogical
#             (test_decoding): the physical reference for change capture
# Each cell runs ROUNDS times; a round runs the designs back to back in an order rotated from round
# to round. Prints a Markdown table (medians; ratios are medians of per-round ratios, with ranges).
#
#   benchmarks/pgbench/write-designs.sh > benchmarks/results/pgbench-designs.md
#   SECONDS_PER_CELL=8 ROUNDS=3 CLIENTS="1 4 16" benchmarks/pgbench/write-designs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_CELL="${SECONDS_PER_CELL:-8}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-1 4 16}"
LATEST=$(ls sql/*.sql | sed -E 's#.*/0*([0-9]+)_.*#\1#' | sort -n | tail -1)
PGBIN=$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")")
DIR=$(mktemp -d /tmp/pgevents-pgbench.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
RUN=""
if [ "$(id -u)" -eq 0 ]; then chown postgres "$DIR"; chmod 755 "$DIR"; RUN="runuser -u postgres --"; fi
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  $RUN "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

dotnet build benchmarks/PgEvents.Benchmarks -c Release -o "$DIR/consumer" >/dev/null
$RUN "$PGBIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
$RUN "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start \
  -o "-p $PORT -k $DIR -c listen_addresses='' -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB -c max_connections=100 -c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4" >/dev/null
PSQL=("$PGBIN/psql" -h "$DIR" -p "$PORT" -U postgres -qAtX -v ON_ERROR_STOP=1)
render() { sed -e 's/__SCHEMA__/pgevents/g' -e 's/__TXKEY__/pgevents.tx_bench/g' -e 's/__COMMITLOCK__/1234567/g' \
  -e 's/__SLEEPCLASS__/1348945270/g' -e 's/__SLEEPKEY__/7654321/g' "$1"; }

make_db() {
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $1"
  "${PSQL[@]}" -d "$1" -c "CREATE TABLE bench (id bigint PRIMARY KEY, payload text NOT NULL);
    INSERT INTO bench SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g; CREATE SEQUENCE ids"
}
make_db plain
make_db pgevents
"${PSQL[@]}" -d pgevents -c "CREATE SCHEMA pgevents"
# The installer's record of what it applied, so the consumer sees the schema as installed.
"${PSQL[@]}" -d pgevents -c "CREATE TABLE pgevents.schema_version (version integer PRIMARY KEY, script text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
for v in $(seq 1 "$LATEST"); do
  f=$(ls sql/$(printf '%03d' "$v")_*.sql); render "$f" | "${PSQL[@]}" -1 -d pgevents >/dev/null
  "${PSQL[@]}" -d pgevents -c "INSERT INTO pgevents.schema_version (version, script) VALUES ($v, '$(basename "$f")')"
done
"${PSQL[@]}" -d pgevents -c "INSERT INTO pgevents.settings (schema_name, channel, trigger_prefix) VALUES ('pgevents', 'pgevents', 'pgevents')"
"${PSQL[@]}" -d pgevents -c "SELECT pgevents.track_table('bench')" >/dev/null
make_db slot
"$PGBIN/pg_recvlogical" -h "$DIR" -p "$PORT" -U postgres -d slot --slot bench --create-slot -P test_decoding
"$PGBIN/pg_recvlogical" -h "$DIR" -p "$PORT" -U postgres -d slot --slot bench --start -f /dev/null &
PIDS+=($!)
dotnet "$DIR/consumer/PgEvents.Benchmarks.dll" --consume "Host=$DIR;Port=$PORT;Username=postgres;Database=pgevents" bench > "$DIR/consumer.log" 2>&1 &
PIDS+=($!)
for d in plain pgevents slot; do "${PSQL[@]}" -d "$d" -c "VACUUM ANALYZE" -c "CHECKPOINT"; done
# The consumer must be running before the first cell.
for _ in $(seq 1 300); do grep -q consuming "$DIR/consumer.log" 2>/dev/null && break; sleep 0.1; done
grep -q consuming "$DIR/consumer.log" || { echo "the consumer did not start:" >&2; cat "$DIR/consumer.log" >&2; exit 1; }

cat > "$DIR/insert.sql" <<'SQL'
INSERT INTO bench VALUES (:client_id::bigint * 100000000 + 10000 + nextval('ids'), repeat('y', 100));
SQL
cat > "$DIR/update.sql" <<'SQL'
\set id random(1, 10000)
UPDATE bench SET payload = md5(random()::text) || repeat('z', 68) WHERE id = :id;
SQL

DESIGNS=(plain pgevents slot)
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

# The consumer must have kept up and be alive: a dead consumer would make PgEvents look cheap.
kill -0 "${PIDS[1]}" 2>/dev/null || { echo "the consumer died:" >&2; cat "$DIR/consumer.log" >&2; exit 1; }
lag=$("${PSQL[@]}" -d pgevents -c "SELECT (SELECT max(position) FROM pgevents.transactions) - position FROM pgevents.consumers WHERE name = 'pgbench'")
echo "consumer lag at the end: $lag transactions" >&2

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { # op c design
  for r in $(seq 1 "$ROUNDS"); do awk -v a="${TPS[$1,$2,$3,$r]}" -v b="${TPS[$1,$2,plain,$r]}" 'BEGIN {printf "%.3f\n", a / b}'; done
}
echo "pgbench, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=on, synchronous_commit=on, wal_level=logical, schema version $LATEST, ${SECONDS_PER_CELL} s per cell, $ROUNDS rotated rounds; a PgEvents consumer runs (lag at the end: $lag transactions) and pg_recvlogical streams the slot."
echo
echo "| op | writers | plain tps | pgevents tps | slot tps | pgevents ÷ plain (median, range) | slot ÷ plain (median, range) |"
echo "|---|---|---|---|---|---|---|"
for op in insert update; do
  for c in $CLIENTS; do
    row=()
    for d in "${DESIGNS[@]}"; do row+=("$(for r in $(seq 1 "$ROUNDS"); do echo "${TPS[$op,$c,$d,$r]}"; done | median)"); done
    cells=()
    for d in pgevents slot; do
      rs=$(ratio "$op" "$c" "$d")
      cells+=("$(printf '%.2f (%.2f–%.2f)' "$(echo "$rs" | median)" "$(echo "$rs" | sort -g | head -1)" "$(echo "$rs" | sort -g | tail -1)")")
    done
    printf '| %s | %s | %.0f | %.0f | %.0f | %s | %s |\n' "$op" "$c" "${row[0]}" "${row[1]}" "${row[2]}" "${cells[0]}" "${cells[1]}"
  done
done
