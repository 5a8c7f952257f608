# Shared by the pgbench write scripts: a throwaway durable cluster, the schema scripts rendered as
# the installer renders them, the two single-row workloads, and rotated rounds of cells.
# Source it from the repository root after setting EXTRA_SERVER_OPTIONS (optional).
SECONDS_PER_CELL="${SECONDS_PER_CELL:-8}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-1 4 16}"
LATEST_VERSION=$(ls sql/*.sql | sed -E 's#.*/0*([0-9]+)_.*#\1#' | sort -n | tail -1)
PGBIN=$(dirname "$(readlink -f "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1)")")
DIR=$(mktemp -d /tmp/pgevents-pgbench.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
RUN=""
if [ "$(id -u)" -eq 0 ]; then chown postgres "$DIR"; chmod 755 "$DIR"; RUN="runuser -u postgres --"; fi
BACKGROUND_PIDS=()
cleanup() {
  for p in "${BACKGROUND_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  $RUN "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT

$RUN "$PGBIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
$RUN "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start \
  -o "-p $PORT -k $DIR -c listen_addresses='' -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB -c max_connections=100 ${EXTRA_SERVER_OPTIONS:-}" >/dev/null
PSQL=("$PGBIN/psql" -h "$DIR" -p "$PORT" -U postgres -qAtX -v ON_ERROR_STOP=1)

# Fixed names; no user input involved. Each script runs in one transaction, as the installer runs it.
render() { sed -e 's/__SCHEMA__/pgevents/g' -e 's/__TXKEY__/pgevents.tx_bench/g' -e 's/__COMMITLOCK__/1234567/g' \
  -e 's/__SLEEPCLASS__/1348945270/g' -e 's/__SLEEPKEY__/7654321/g' -e 's/__SNAPSHOTKEY__/7654322/g' "$1"; }

# make_db NAME [VERSION]: the bench table with 10,000 rows; tracked by schema VERSION when given.
make_db() {
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE $1"
  "${PSQL[@]}" -d "$1" -c "CREATE TABLE bench (id bigint PRIMARY KEY, payload text NOT NULL);
    INSERT INTO bench SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g; CREATE SEQUENCE ids"
  if [ "${2:-0}" -gt 0 ]; then
    "${PSQL[@]}" -d "$1" -c "CREATE SCHEMA pgevents; CREATE TABLE pgevents.schema_version
      (version integer PRIMARY KEY, script text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    for v in $(seq 1 "$2"); do
      f=$(ls sql/$(printf '%03d' "$v")_*.sql)
      render "$f" | "${PSQL[@]}" -1 -d "$1" >/dev/null
      "${PSQL[@]}" -d "$1" -c "INSERT INTO pgevents.schema_version (version, script) VALUES ($v, '$(basename "$f")')"
    done
    "${PSQL[@]}" -d "$1" -c "INSERT INTO pgevents.settings (schema_name, channel, trigger_prefix) VALUES ('pgevents', 'pgevents', 'pgevents')"
    "${PSQL[@]}" -d "$1" -c "SELECT pgevents.track_table('bench')" >/dev/null
  fi
}

cat > "$DIR/insert.sql" <<'SQL'
INSERT INTO bench VALUES (:client_id::bigint * 100000000 + 10000 + nextval('ids'), repeat('y', 100));
SQL
cat > "$DIR/update.sql" <<'SQL'
\set id random(1, 10000)
UPDATE bench SET payload = md5(random()::text) || repeat('z', 68) WHERE id = :id;
SQL

# run_rounds DESIGN...: fills TPS["op,clients,design,round"].
declare -A TPS
run_rounds() {
  local designs=("$@") n=$# round op c i d tps
  for d in "${designs[@]}"; do "${PSQL[@]}" -d "$d" -c "VACUUM ANALYZE" -c "CHECKPOINT"; done
  for round in $(seq 1 "$ROUNDS"); do
    for op in insert update; do
      for c in $CLIENTS; do
        for i in $(seq 0 $((n - 1))); do
          d=${designs[$(( (i + round) % n ))]}
          if declare -F before_cell >/dev/null; then before_cell "$d"; fi
          tps=$("$PGBIN/pgbench" -h "$DIR" -p "$PORT" -U postgres -n -c "$c" -j "$c" -T "$SECONDS_PER_CELL" -f "$DIR/$op.sql" "$d" 2>/dev/null \
                | sed -nE 's/^tps = ([0-9.]+) .*/\1/p')
          TPS["$op,$c,$d,$round"]=$tps
          echo "round $round $op c=$c $d: $tps tps" >&2
        done
      done
    done
  done
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# cell_median OP CLIENTS DESIGN
cell_median() { for r in $(seq 1 "$ROUNDS"); do echo "${TPS[$1,$2,$3,$r]}"; done | median; }

# ratio_cell OP CLIENTS DESIGN BASE: "median (min–max)" of the per-round ratios DESIGN ÷ BASE.
ratio_cell() {
  local rs
  rs=$(for r in $(seq 1 "$ROUNDS"); do awk -v a="${TPS[$1,$2,$3,$r]}" -v b="${TPS[$1,$2,$4,$r]}" 'BEGIN {printf "%.3f\n", a / b}'; done)
  printf '%.2f (%.2f–%.2f)' "$(echo "$rs" | median)" "$(echo "$rs" | sort -g | head -1)" "$(echo "$rs" | sort -g | tail -1)"
}

# A tracked design that captured nothing would be a broken benchmark, not a fast one.
require_captured() {
  local captured
  captured=$("${PSQL[@]}" -d "$1" -c "SELECT count(*) FROM pgevents.events e JOIN pgevents.transactions t USING (xid)")
  [ "$captured" -gt 0 ] || { echo "$1 captured no committed events" >&2; exit 1; }
  echo "$1: $captured committed events captured" >&2
}

# start_consumer DB [TABLES]: builds the benchmark driver and runs a PgEvents consumer (no-op handler) on DB
# in the background, as in production, mapping TABLES (default bench); waits until it consumes.
CONSUMERS=()
start_consumer() {
  [ -f "$DIR/consumer/PgEvents.Benchmarks.dll" ] || dotnet build benchmarks/PgEvents.Benchmarks -c Release -o "$DIR/consumer" >/dev/null
  local log="$DIR/consumer-$1.log" pid
  dotnet "$DIR/consumer/PgEvents.Benchmarks.dll" --consume "Host=$DIR;Port=$PORT;Username=postgres;Database=$1" "${2:-bench}" > "$log" 2>&1 &
  pid=$!
  BACKGROUND_PIDS+=($pid)
  CONSUMERS+=("$pid:$log")
  for _ in $(seq 1 300); do grep -q consuming "$log" 2>/dev/null && break; sleep 0.1; done
  grep -q consuming "$log" || { echo "the consumer of $1 did not start:" >&2; cat "$log" >&2; exit 1; }
}

# require_consumer_alive: a dead consumer would make the consumed design look cheap.
require_consumer_alive() {
  local c
  for c in "${CONSUMERS[@]}"; do
    kill -0 "${c%%:*}" 2>/dev/null || { echo "a consumer died:" >&2; cat "${c#*:}" >&2; exit 1; }
  done
}

# describe_run: the first words of a results file (when, where, which settings).
describe_run() {
  echo -n "pgbench, $(date -u +%F' '%H:%M) UTC, $(nproc) cores, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), fsync=on, synchronous_commit=on, schema version $LATEST_VERSION, ${SECONDS_PER_CELL} s per cell, $ROUNDS rotated rounds"
}

# three_way_table A B C: tps of three designs and the ratios B ÷ A, C ÷ A and C ÷ B, per op and writers.
three_way_table() {
  local a=$1 b=$2 c=$3 op n
  echo "| op | writers | $a tps | $b tps | $c tps | $b ÷ $a | $c ÷ $a | $c ÷ $b (median, range) |"
  echo "|---|---|---|---|---|---|---|---|"
  for op in insert update; do
    for n in $CLIENTS; do
      printf '| %s | %s | %.0f | %.0f | %.0f | %s | %s | %s |\n' "$op" "$n" \
        "$(cell_median "$op" "$n" "$a")" "$(cell_median "$op" "$n" "$b")" "$(cell_median "$op" "$n" "$c")" \
        "$(ratio_cell "$op" "$n" "$b" "$a")" "$(ratio_cell "$op" "$n" "$c" "$a")" "$(ratio_cell "$op" "$n" "$c" "$b")"
    done
  done
}
