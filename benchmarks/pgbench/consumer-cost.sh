#!/usr/bin/env bash
# What a running consumer costs the writers (issue #11: "consumer reads that do not compete with
# writers"): single-row autocommit transactions measured with pgbench, side by side on one throwaway
# durable cluster, rotated rounds:
#   plain     the table with no trigger (the floor)
#   idle      the table tracked by the latest schema, no consumer: the log only grows
#   consumed  the same, with a PgEvents consumer (no-op handler) reading, saving its cursor and
#             running retention as in production (benchmarks/PgEvents.Benchmarks --consume)
# consumed ÷ idle is what the consumer's own reads and writes cost the server under load.
#
#   benchmarks/pgbench/consumer-cost.sh > benchmarks/results/pgbench-consumer-cost.md
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/pgbench/common.sh

make_db plain
make_db idle "$LATEST_VERSION"
make_db consumed "$LATEST_VERSION"

start_consumer consumed

run_rounds plain idle consumed
require_captured idle
require_captured consumed
require_consumer_alive
lag=$("${PSQL[@]}" -d consumed -c "SELECT (SELECT max(position) FROM pgevents.transactions) - position FROM pgevents.consumers WHERE name = 'pgbench'")

echo "pgbench, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=on, synchronous_commit=on, schema version $LATEST_VERSION, ${SECONDS_PER_CELL} s per cell, $ROUNDS rotated rounds; the consumer of 'consumed' ended $lag transactions behind."
echo
echo "| op | writers | plain tps | idle tps | consumed tps | idle ÷ plain | consumed ÷ plain | consumed ÷ idle (median, range) |"
echo "|---|---|---|---|---|---|---|---|"
for op in insert update; do
  for c in $CLIENTS; do
    printf '| %s | %s | %.0f | %.0f | %.0f | %s | %s | %s |\n' "$op" "$c" \
      "$(cell_median "$op" "$c" plain)" "$(cell_median "$op" "$c" idle)" "$(cell_median "$op" "$c" consumed)" \
      "$(ratio_cell "$op" "$c" idle plain)" "$(ratio_cell "$op" "$c" consumed plain)" "$(ratio_cell "$op" "$c" consumed idle)"
  done
done
