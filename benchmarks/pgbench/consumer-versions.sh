#!/usr/bin/env bash
# What a change to the consumer costs or saves the writers: pgbench single-row transactions into
# tables tracked by the current schema, side by side on one throwaway durable cluster, rotated rounds:
#   plain     the untracked table
#   base      a consumer built from BASE_REF (a git ref, default HEAD~1) reading its own database,
#             which holds BASE_REF's latest schema
#   current   a consumer built from the working tree reading its own database
#   nospin    the working tree's consumer with the .NET thread pool's spin-waiting turned off
#             (DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0, a setting of the host process)
# Only the database being written has work; the other consumers sleep.
#
#   BASE_REF=b938b95 benchmarks/pgbench/consumer-versions.sh > benchmarks/results/pgbench-consumer-versions.md
set -euo pipefail
cd "$(dirname "$0")/../.."
source benchmarks/pgbench/common.sh
BASE_REF="${BASE_REF:-HEAD~1}"
BASE_COMMIT=$(git rev-parse --short "$BASE_REF")

git worktree add --detach "$DIR/base-tree" "$BASE_COMMIT" >/dev/null 2>&1
remove_worktree() { git worktree remove --force "$DIR/base-tree" >/dev/null 2>&1 || true; cleanup; }
trap remove_worktree EXIT
dotnet build "$DIR/base-tree/benchmarks/PgEvents.Benchmarks" -c Release -o "$DIR/consumer-base" >/dev/null

BASE_VERSION=$(ls "$DIR"/base-tree/sql/*.sql | sed -E 's#.*/0*([0-9]+)_.*#\1#' | sort -n | tail -1)
make_db plain
(cd "$DIR/base-tree" && make_db base "$BASE_VERSION")
for d in current nospin; do make_db "$d" "$LATEST_VERSION"; done
start_consumer current
DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 start_consumer nospin
log="$DIR/consumer-base.log"
dotnet "$DIR/consumer-base/PgEvents.Benchmarks.dll" --consume "Host=$DIR;Port=$PORT;Username=postgres;Database=base" bench > "$log" 2>&1 &
BACKGROUND_PIDS+=($!)
CONSUMERS+=("$!:$log")
for _ in $(seq 1 300); do grep -q consuming "$log" 2>/dev/null && break; sleep 0.1; done
grep -q consuming "$log" || { echo "the consumer built from $BASE_COMMIT did not start:" >&2; cat "$log" >&2; exit 1; }

run_rounds plain base current nospin
require_consumer_alive
lags=""
for d in base current nospin; do
  require_captured "$d"
  lags="$lags $d $("${PSQL[@]}" -d "$d" -c "SELECT (SELECT max(position) FROM pgevents.transactions) - position FROM pgevents.consumers WHERE name = 'pgbench'"),"
done

echo "$(describe_run); base = consumer and schema version $BASE_VERSION of $BASE_COMMIT, current = working tree; lag at the end (transactions):${lags%,}."
echo
echo "| op | writers | plain | base | current | current, no spin | base ÷ plain | current ÷ plain | no spin ÷ plain | current ÷ base (median, range) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for op in insert update; do
  for n in $CLIENTS; do
    printf '| %s | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n' "$op" "$n" \
      "$(cell_median "$op" "$n" plain)" "$(cell_median "$op" "$n" base)" "$(cell_median "$op" "$n" current)" "$(cell_median "$op" "$n" nospin)" \
      "$(ratio_cell "$op" "$n" base plain)" "$(ratio_cell "$op" "$n" current plain)" "$(ratio_cell "$op" "$n" nospin plain)" \
      "$(ratio_cell "$op" "$n" current base)"
  done
done
