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

echo "$(describe_run); the consumer of 'consumed' ended $lag transactions behind."
echo
three_way_table plain idle consumed
