-- PgEvents schema, version 8: snapshots of the rows a table already holds.
--
-- A snapshot is written into the log itself, one chunk of rows (in primary-key order) per
-- transaction, as SNAPSHOT events addressed to the one consumer that asked for it. The chunk
-- transaction takes a position like any writer, so the consumer gets the chunk in commit order,
-- between the changes before and after it, through the very reader, lanes, batches, retries and
-- dead letters it already uses; and the chunk and the snapshot's progress commit together, so a
-- crash resumes after the last chunk written. Other consumers see a chunk as a position with
-- nothing for them, which they pass over like a rolled-back one.
--
-- Ordering. A chunk's position P must sort after every change its rows already show and before
-- every change they do not. The chunk transaction
--   1. announces itself (the commit-phase lock) and takes P at once;
--   2. waits for every other transaction in its commit phase: whoever took a position below P
--      held its lock when P was taken, so once they have all ended each of them is visible
--      (or rolled back);
--   3. reads the chunk in one statement. Transactions that took a position above P may have
--      committed meanwhile, and their changes would otherwise reach the consumer after an image
--      already newer than them. The statement sees their events too, and leaves out every row
--      whose key (old or new) they touched: those rows arrive, whole, through those events.
-- Holding the commit-phase lock while it reads makes consumers wait on P exactly as they wait on
-- any committing writer, so nothing after P is delivered before the chunk. Chunk transactions of
-- different consumers take a lock of their own first: two of them waiting for each other's
-- commit phase in step 2 would deadlock.
--
-- Writers are never blocked: the chunk reads the table with a plain SELECT (ACCESS SHARE).

ALTER TABLE __SCHEMA__.events ADD COLUMN snapshot_for text;

-- NOT VALID: the rows already there satisfy the stricter old check, and validating would scan
-- the whole log under a lock that stops writers.
ALTER TABLE __SCHEMA__.events DROP CONSTRAINT events_operation_check;
ALTER TABLE __SCHEMA__.events ADD CONSTRAINT events_operation_check
    CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'SNAPSHOT')) NOT VALID;

-- One row per consumer and table ever snapshotted: the progress of a running snapshot, and the
-- record that an initial snapshot was taken (so it is never taken twice).
CREATE TABLE __SCHEMA__.snapshots (
    consumer        text        NOT NULL,
    -- The table by identity: a rename during the snapshot changes nothing.
    relation        oid         NOT NULL,
    schema_name     text        NOT NULL,
    table_name      text        NOT NULL,
    reason          text        NOT NULL CHECK (reason IN ('initial', 'requested')),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    -- The primary key the snapshot reads in (columns and types, as snapshot_key gives them): a
    -- chunk that finds another key starts over in it, since last_key is a position in this one.
    key_columns     text[],
    key_types       text[],
    -- The primary key of the last row read, each column as text, cast back by the next chunk.
    last_key        text[],
    rows_read       bigint      NOT NULL DEFAULT 0,
    rows_written    bigint      NOT NULL DEFAULT 0,
    rows_estimated  bigint      NOT NULL DEFAULT 0,
    chunks          integer     NOT NULL DEFAULT 0,
    -- The position of the last chunk that wrote rows: delivered once the consumer passed it.
    last_position   bigint,
    completed_at    timestamptz,
    -- Why a snapshot ended without reading every row (its table was dropped, lost its key).
    error           text,
    PRIMARY KEY (consumer, relation)
);

-- The primary-key columns of a table, in key order, with their SQL types.
CREATE FUNCTION __SCHEMA__.snapshot_key(p_table regclass, OUT columns text[], OUT types text[])
LANGUAGE sql STABLE AS $fn$
    SELECT array_agg(a.attname::text ORDER BY k.ord), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.ord)
      FROM pg_catalog.pg_index i
     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = p_table AND i.indisprimary
$fn$;

-- Starts (or, with p_restart, starts over) a snapshot of p_table for p_consumer. An initial
-- snapshot is only ever recorded once; a requested one restarts a finished or running one.
CREATE FUNCTION __SCHEMA__.request_snapshot(p_consumer text, p_table regclass, p_reason text)
RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_key record;
    v_estimate bigint;
    v_started boolean;
BEGIN
    v_key := __SCHEMA__.snapshot_key(p_table);
    IF v_key.columns IS NULL THEN
        RAISE EXCEPTION 'PgEvents cannot snapshot table %: it has no primary key, and a snapshot reads a table in primary-key order', p_table
            USING ERRCODE = '55000';
    END IF;
    -- Partitions and children hold the rows of a partitioned or inheritance parent.
    SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint INTO v_estimate
      FROM __SCHEMA__.tracked_members(p_table) m JOIN pg_catalog.pg_class c ON c.oid = m.member;
    INSERT INTO __SCHEMA__.snapshots AS s (consumer, relation, schema_name, table_name, reason, rows_estimated, key_columns, key_types)
    SELECT p_consumer, p_table, n.nspname, c.relname, p_reason, v_estimate, v_key.columns, v_key.types
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table
    ON CONFLICT (consumer, relation) DO UPDATE
       SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name, reason = EXCLUDED.reason,
           requested_at = now(), key_columns = EXCLUDED.key_columns, key_types = EXCLUDED.key_types, last_key = NULL, rows_read = 0, rows_written = 0,
           rows_estimated = EXCLUDED.rows_estimated, chunks = 0, last_position = NULL, completed_at = NULL, error = NULL
     WHERE p_reason = 'requested'
    RETURNING true INTO v_started;
    RETURN coalesce(v_started, false);
END
$fn$;

-- Writes the next chunk of the snapshot of p_relation for p_consumer (see the header), and
-- returns where it went. The settings make the key's text form the same in every session.
CREATE FUNCTION __SCHEMA__.snapshot_chunk(
    p_consumer text, p_relation oid, p_rows integer,
    OUT chunk_position bigint, OUT rows_read integer, OUT rows_written integer, OUT completed boolean)
LANGUAGE plpgsql
SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres' SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $fn$
DECLARE
    v_state __SCHEMA__.snapshots;
    v_xid xid8 := pg_current_xact_id();
    v_key record;
    v_table text;
    v_schema_name text;
    v_table_name text;
    v_schema_now text;
    v_table_now text;
    v_order text;
    v_order_desc text;
    v_after text;
    v_key_record text;
    v_key_match text;
    v_last_text text;
    v_last text[];
    v_holder bigint;
BEGIN
    -- Step 3 needs a snapshot of its own, taken after step 2.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'PgEvents writes snapshot chunks in READ COMMITTED transactions, not %', current_setting('transaction_isolation')
            USING ERRCODE = '25000';
    END IF;
    SELECT * INTO v_state FROM __SCHEMA__.snapshots WHERE consumer = p_consumer AND relation = p_relation FOR UPDATE;
    IF NOT FOUND OR v_state.completed_at IS NOT NULL THEN
        completed := true;
        rows_read := 0;
        rows_written := 0;
        RETURN;
    END IF;
    SELECT n.nspname, c.relname INTO v_schema_name, v_table_name
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'PgEvents cannot continue the snapshot of table %.%: the table no longer exists',
            quote_ident(v_state.schema_name), quote_ident(v_state.table_name) USING ERRCODE = '42P01';
    END IF;

    -- Step 1. Only one chunk transaction of this installation is in its commit phase at a time.
    PERFORM pg_advisory_xact_lock(__SLEEPCLASS__, __SNAPSHOTKEY__);
    PERFORM pg_advisory_xact_lock((__COMMITLOCK__::bigint << 32) | (v_xid::text::bigint & 4294967295));
    chunk_position := nextval('__SCHEMA__.position_seq');
    INSERT INTO __SCHEMA__.transactions (xid, position, committed_at) VALUES (v_xid, chunk_position, clock_timestamp());

    -- Step 2. Each wait releases at once what it was granted (see CommitPhase in the library).
    FOR v_holder IN
        SELECT objid::bigint FROM pg_catalog.pg_locks
         WHERE locktype = 'advisory' AND objsubid = 1 AND mode = 'ExclusiveLock' AND granted
           AND classid = __COMMITLOCK__::oid AND pid <> pg_backend_pid()
           AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
    LOOP
        PERFORM pg_advisory_lock_shared((__COMMITLOCK__::bigint << 32) | v_holder),
                pg_advisory_unlock_shared((__COMMITLOCK__::bigint << 32) | v_holder);
    END LOOP;

    -- The table was not locked during the wait (that would hold DDL, and the writers queued behind
    -- it, for as long as the wait): it may have been renamed or given another primary key since it
    -- was looked up. Lock it now, as the read is about to, and look again. A rename is written
    -- again from the start (40001, retried by the library): events of later positions may carry
    -- the old name, and they are matched by name. A rename between rendering the name and locking
    -- fails the LOCK; the lookup below tells it from a drop.
    BEGIN
        EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', p_relation::regclass);
    EXCEPTION WHEN undefined_table THEN
        NULL;
    END;
    SELECT n.nspname, c.relname INTO v_schema_now, v_table_now
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_relation;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'PgEvents cannot continue the snapshot of table %.%: the table no longer exists',
            quote_ident(v_schema_name), quote_ident(v_table_name) USING ERRCODE = '42P01';
    END IF;
    IF v_schema_now <> v_schema_name OR v_table_now <> v_table_name THEN
        RAISE EXCEPTION 'PgEvents writes this chunk of the snapshot of table %.% again: the table was renamed to %.% while the chunk waited',
            quote_ident(v_schema_name), quote_ident(v_table_name), quote_ident(v_schema_now), quote_ident(v_table_now)
            USING ERRCODE = '40001';
    END IF;
    -- The read runs with the consumer's privileges: a row-level security policy would hide rows
    -- from it, and the snapshot would complete without them. Refuse instead (as the TRUNCATE capture does).
    IF NOT has_table_privilege(p_relation, 'SELECT') OR row_security_active(p_relation) THEN
        RAISE EXCEPTION 'PgEvents cannot snapshot table %.%: % cannot read all of its rows (no SELECT privilege, or row-level security applies)',
            quote_ident(v_schema_now), quote_ident(v_table_now), current_user
            USING ERRCODE = '42501',
                  HINT = 'Grant SELECT on it to the consumer''s role, with BYPASSRLS or as the owner of a table whose row-level security is not forced, then request the snapshot again.';
    END IF;
    v_key := __SCHEMA__.snapshot_key(p_relation);
    IF v_key.columns IS NULL THEN
        RAISE EXCEPTION 'PgEvents cannot continue the snapshot of table %.%: it no longer has a primary key',
            quote_ident(v_schema_name), quote_ident(v_table_name) USING ERRCODE = '55000';
    END IF;
    IF v_state.key_columns IS DISTINCT FROM v_key.columns OR v_state.key_types IS DISTINCT FROM v_key.types THEN
        -- last_key is a position in the old key, meaningless in the new one (its rows would be
        -- skipped or read twice out of order): start over. Rows already delivered come again, no older.
        v_state.last_key := NULL;
    END IF;

    -- Step 3, one statement and so one snapshot. The keys events hold are read back into the key's
    -- types and compared with the key's own equality: their JSON text depends on the writer's
    -- session (a timestamptz is written in its TimeZone, an interval in its IntervalStyle), so two
    -- texts of one key need not be equal.
    v_table := format('%I.%I', v_schema_name, v_table_name);
    SELECT string_agg(format('c.%I', col), ', '),
           string_agg(format('c.%I DESC', col), ', '),
           string_agg(format('$1[%s]::%s', ord, v_key.types[ord]), ', '),
           string_agg(format('%I %s', col, v_key.types[ord]), ', '),
           '(' || string_agg(format('newer.%I', col), ', ') || ') = (' || string_agg(format('c.%I', col), ', ') || ')',
           'ARRAY[' || string_agg(format('c.%I::text', col), ', ') || ']'
      INTO v_order, v_order_desc, v_after, v_key_record, v_key_match, v_last_text
      FROM unnest(v_key.columns) WITH ORDINALITY AS k(col, ord);

    EXECUTE format(
        $q$
        WITH chunk AS MATERIALIZED (
                SELECT * FROM %1$s AS c %2$s ORDER BY %3$s LIMIT $2),
             newer AS (
                SELECT k.* FROM __SCHEMA__.transactions t
                  JOIN __SCHEMA__.events e ON e.xid = t.xid
                 CROSS JOIN LATERAL (
                        SELECT * FROM jsonb_to_record(e.row_data) AS x(%4$s) WHERE e.row_data IS NOT NULL
                        UNION ALL
                        SELECT * FROM jsonb_to_record(e.old_row_data) AS x(%4$s) WHERE e.old_row_data IS NOT NULL) AS k
                 WHERE t.position > $3 AND e.snapshot_for IS NULL
                   AND e.schema_name = $4 AND e.table_name = $5),
             written AS (
                INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, snapshot_for)
                SELECT $6, $4, $5, 'SNAPSHOT', to_jsonb(c), $7 FROM chunk AS c
                 WHERE NOT EXISTS (SELECT 1 FROM newer WHERE %5$s)
                 ORDER BY %3$s
                RETURNING 1)
        SELECT (SELECT count(*) FROM chunk)::integer, (SELECT count(*) FROM written)::integer,
               (SELECT %6$s FROM chunk AS c ORDER BY %7$s LIMIT 1)
        $q$,
        v_table,
        CASE WHEN v_state.last_key IS NULL THEN '' ELSE format('WHERE (%s) > (%s)', v_order, v_after) END,
        v_order, v_key_record, v_key_match, v_last_text, v_order_desc)
      INTO rows_read, rows_written, v_last
      USING v_state.last_key, p_rows, chunk_position, v_schema_name, v_table_name, v_xid, p_consumer;

    completed := rows_read < p_rows;
    UPDATE __SCHEMA__.snapshots
       SET last_key = coalesce(v_last, v_state.last_key), key_columns = v_key.columns, key_types = v_key.types, rows_read = snapshots.rows_read + snapshot_chunk.rows_read,
           rows_written = snapshots.rows_written + snapshot_chunk.rows_written, chunks = chunks + 1,
           last_position = CASE WHEN snapshot_chunk.rows_written > 0 THEN chunk_position ELSE last_position END, completed_at = CASE WHEN completed THEN clock_timestamp() END,
           schema_name = v_schema_name, table_name = v_table_name
     WHERE consumer = p_consumer AND relation = p_relation;

    -- No NOTIFY: the consumer this chunk is for runs the writer and wakes itself.
END
$fn$;
