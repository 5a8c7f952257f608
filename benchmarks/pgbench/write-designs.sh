#!/usr/bin/env bash
# Write throughput of single-row autocommit transactions measured with pgbench (no .NET driver in
# the writers' path), side by side on one throwaway durable cluster with wal_level=logical:
#   plain     the table with no trigger (the floor)
#   pgevents  the table tracked by the schema in sql/, with a PgEvents consumer running as in
#             production (benchmarks/PgEvents.Benchmarks --consume, a no-op handler)
#   slot      the plain table with a logical replication slot streamed by pg_recvlogical
#             (test_decoding): the physical reference for change capture
# Each cell runs ROUNDS times, the designs back to back in an order rotated from round to round.
#
#   benchmarks/pgbench/write-designs.sh > benchmarks/results/pgbench-designs.md
#   SECONDS_PER_CELL=8 ROUNDS=3 CLIENTS="1 4 16" benchmarks/pgbench/write-designs.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
EXTRA_SERVER_OPTIONS="-c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4"
source benchmarks/pgbench/common.sh

make_db plain
make_db pgevents "$LATEST_VERSION"
make_db slot
"$PGBIN/pg_recvlogical" -h "$DIR" -p "$PORT" -U postgres -d slot --slot bench --create-slot -P test_decoding
"$PGBIN/pg_recvlogical" -h "$DIR" -p "$PORT" -U postgres -d slot --slot bench --start -f /dev/null &
BACKGROUND_PIDS+=($!)
start_consumer pgevents

run_rounds plain pgevents slot
require_captured pgevents
require_consumer_alive
lag=$("${PSQL[@]}" -d pgevents -c "SELECT (SELECT max(position) FROM pgevents.transactions) - position FROM pgevents.consumers WHERE name = 'pgbench'")
echo "consumer lag at the end: $lag transactions" >&2

echo "pgbench, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=on, synchronous_commit=on, wal_level=logical, schema version $LATEST_VERSION, ${SECONDS_PER_CELL} s per cell, $ROUNDS rotated rounds; a PgEvents consumer runs (lag at the end: $lag transactions) and pg_recvlogical streams the slot."
echo
echo "| op | writers | plain tps | pgevents tps | slot tps | pgevents ÷ plain (median, range) | slot ÷ plain (median, range) |"
echo "|---|---|---|---|---|---|---|"
for op in insert update; do
  for c in $CLIENTS; do
    printf '| %s | %s | %.0f | %.0f | %.0f | %s | %s |\n' "$op" "$c" \
      "$(cell_median "$op" "$c" plain)" "$(cell_median "$op" "$c" pgevents)" "$(cell_median "$op" "$c" slot)" \
      "$(ratio_cell "$op" "$c" pgevents plain)" "$(ratio_cell "$op" "$c" slot plain)"
  done
done
