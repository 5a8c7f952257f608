#!/usr/bin/env bash
# Write throughput of single-row autocommit transactions measured with pgbench (no .NET driver in
# the path), side by side on one throwaway durable cluster: an untracked table, and the same table
# tracked by PgEvents at two schema versions (default: 4 and the latest in sql/), no consumer.
# Each cell runs ROUNDS times, the designs back to back in an order rotated from round to round.
#
#   benchmarks/pgbench/write-versions.sh [baseline-version [candidate-version]] > result.md
#   SECONDS_PER_CELL=8 ROUNDS=3 CLIENTS="1 4 16" benchmarks/pgbench/write-versions.sh 4
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/pgbench/common.sh
BASE="${1:-4}"
CANDIDATE="${2:-$LATEST_VERSION}"

make_db plain
make_db "v$BASE" "$BASE"
make_db "v$CANDIDATE" "$CANDIDATE"
run_rounds plain "v$BASE" "v$CANDIDATE"
require_captured "v$BASE"
require_captured "v$CANDIDATE"

echo "pgbench, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=on, synchronous_commit=on, ${SECONDS_PER_CELL} s per cell, $ROUNDS rotated rounds, no listener."
echo
echo "| op | writers | untracked tps | v$BASE tps | v$CANDIDATE tps | v$CANDIDATE ÷ v$BASE (median, range) | v$CANDIDATE ÷ untracked |"
echo "|---|---|---|---|---|---|---|"
for op in insert update; do
  for c in $CLIENTS; do
    plain=$(cell_median "$op" "$c" plain); base=$(cell_median "$op" "$c" "v$BASE"); candidate=$(cell_median "$op" "$c" "v$CANDIDATE")
    printf '| %s | %s | %.0f | %.0f | %.0f | %s | %.2f |\n' "$op" "$c" "$plain" "$base" "$candidate" \
      "$(ratio_cell "$op" "$c" "v$CANDIDATE" "v$BASE")" "$(awk -v a="$candidate" -v b="$plain" 'BEGIN {print a / b}')"
  done
done
