#!/usr/bin/env bash
# Write throughput of single-row autocommit transactions measured with pgbench (no .NET driver in
# the writers' path), side by side on one throwaway durable cluster with wal_level=logical:
#   plain     the table with no trigger (the floor)
#   pgevents  the table tracked by the schema in sql/, with a PgEvents consumer running as in
#             production (benchmarks/PgEvents.Benchmarks --consume, a no-op handler)
#   slot      the plain table with a logical replication slot streamed by pg_recvlogical
#             (test_decoding): the physical reference for change capture
#   notify    seed design (a): a row trigger that sends pg_notify with the row as JSON, a psql
#             session listening (it reads its notifications every 10 ms)
#   outbox    seed design (b): a row trigger that inserts the row into an event table with a
#             bigserial id, a psql session polling it by id every 100 ms, no NOTIFY
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
make_db notify
"${PSQL[@]}" -d notify -c "CREATE FUNCTION notify_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
    BEGIN PERFORM pg_notify('bench_a', row_to_json(NEW)::text); RETURN NULL; END \$\$;
  CREATE TRIGGER notify_row AFTER INSERT OR UPDATE ON bench FOR EACH ROW EXECUTE FUNCTION notify_row()"
make_db outbox
"${PSQL[@]}" -d outbox -c "CREATE TABLE outbox (id bigserial PRIMARY KEY, table_name text NOT NULL, op text NOT NULL, row_data jsonb NOT NULL);
  CREATE FUNCTION outbox_row() RETURNS trigger LANGUAGE plpgsql AS \$\$
    BEGIN INSERT INTO outbox (table_name, op, row_data) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW)); RETURN NULL; END \$\$;
  CREATE TRIGGER outbox_row AFTER INSERT OR UPDATE ON bench FOR EACH ROW EXECUTE FUNCTION outbox_row()"
# psql handles the notifications it received after each command it runs.
(echo "LISTEN bench_a;"; echo "SELECT 1 \\watch 0.01") | "${PSQL[@]}" -d notify >/dev/null 2>&1 &
BACKGROUND_PIDS+=($!)
(echo "SELECT max(id) FROM outbox \\watch 0.1") | "${PSQL[@]}" -d outbox >/dev/null 2>&1 &
BACKGROUND_PIDS+=($!)
"$PGBIN/pg_recvlogical" -h "$DIR" -p "$PORT" -U postgres -d slot --slot bench --create-slot -P test_decoding
"$PGBIN/pg_recvlogical" -h "$DIR" -p "$PORT" -U postgres -d slot --slot bench --start -f /dev/null &
BACKGROUND_PIDS+=($!)
start_consumer pgevents

run_rounds plain pgevents slot notify outbox
require_captured pgevents
require_consumer_alive
lag=$("${PSQL[@]}" -d pgevents -c "SELECT (SELECT max(position) FROM pgevents.transactions) - position FROM pgevents.consumers WHERE name = 'pgbench'")
echo "consumer lag at the end: $lag transactions" >&2

echo "pgbench, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=on, synchronous_commit=on, wal_level=logical, schema version $LATEST_VERSION, ${SECONDS_PER_CELL} s per cell, $ROUNDS rotated rounds; a PgEvents consumer runs (lag at the end: $lag transactions) and pg_recvlogical streams the slot."
echo
echo "| op | writers | plain tps | pgevents tps | slot tps | (a) notify tps | (b) outbox tps | pgevents ÷ plain (median, range) | slot ÷ plain | (a) ÷ plain | (b) ÷ plain |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for op in insert update; do
  for c in $CLIENTS; do
    printf '| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s |\n' "$op" "$c" \
      "$(cell_median "$op" "$c" plain)" "$(cell_median "$op" "$c" pgevents)" "$(cell_median "$op" "$c" slot)" \
      "$(cell_median "$op" "$c" notify)" "$(cell_median "$op" "$c" outbox)" \
      "$(ratio_cell "$op" "$c" pgevents plain)" "$(ratio_cell "$op" "$c" slot plain)" \
      "$(ratio_cell "$op" "$c" notify plain)" "$(ratio_cell "$op" "$c" outbox plain)"
  done
done
