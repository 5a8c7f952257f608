#!/usr/bin/env bash
# What a running snapshot costs concurrent writers (issue #14): single-row autocommit transactions
# measured with pgbench, side by side on one throwaway durable cluster, rotated rounds:
#   plain         the table with no trigger (the floor)
#   consumed      the table tracked by the latest schema, a PgEvents consumer (no-op handler) reading
#   snapshotting  the same, and the same consumer snapshots a second table of ROWS rows (1,000-row
#                 chunks) for the whole cell: each of its cells starts the snapshot over
# snapshotting ÷ consumed is what the snapshot costs the writers. A snapshot left running in its
# database would load the server during the other cells too, so it is stopped before each of them.
#
#   benchmarks/pgbench/snapshot-cost.sh > benchmarks/results/pgbench-snapshot-cost.md
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS="${ROWS:-1000000}"
source benchmarks/pgbench/common.sh

make_db plain
make_db consumed "$LATEST_VERSION"
make_db snapshotting "$LATEST_VERSION"
"${PSQL[@]}" -d snapshotting -c "CREATE TABLE big (id bigint PRIMARY KEY, payload text NOT NULL);
  INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, $ROWS) g" \
  -c "VACUUM ANALYZE big" -c "SELECT pgevents.track_table('big')" >/dev/null

start_consumer consumed
start_consumer snapshotting bench,big

SNAPSHOT_ROWS=0
stop_snapshot() {
  "${PSQL[@]}" -d snapshotting -c "UPDATE pgevents.snapshots SET completed_at = now(), error = 'stopped by the benchmark' WHERE completed_at IS NULL"
}
before_cell() {
  if [ "$1" = snapshotting ]; then
    # Starts over; the consumer's snapshot worker finds it within its poll interval (1 s).
    "${PSQL[@]}" -d snapshotting -c "SELECT pgevents.request_snapshot('pgbench', 'big', 'requested')" >/dev/null
    for _ in $(seq 1 100); do
      [ "$("${PSQL[@]}" -d snapshotting -c "SELECT rows_read FROM pgevents.snapshots")" -gt 0 ] && break
      sleep 0.05
    done
  else
    local read
    read=$("${PSQL[@]}" -d snapshotting -c "SELECT coalesce(sum(rows_read), 0) FROM pgevents.snapshots WHERE completed_at IS NULL")
    SNAPSHOT_ROWS=$((SNAPSHOT_ROWS + read))
    stop_snapshot
  fi
}

run_rounds plain consumed snapshotting
before_cell plain
require_captured consumed
require_captured snapshotting
require_consumer_alive
CELLS=$(( ROUNDS * 2 * $(echo $CLIENTS | wc -w) ))

echo "$(describe_run); the snapshot read $SNAPSHOT_ROWS rows of a $ROWS-row table in $CELLS snapshotting cells ($(( SNAPSHOT_ROWS / (CELLS * SECONDS_PER_CELL) )) rows/s beside the writers)."
echo
three_way_table plain consumed snapshotting
