-- PgEvents schema, version 1.
--
-- The installer replaces __SCHEMA__ with the safely quoted schema identifier and __TXKEY__ with a
-- generated configuration key made only of [a-z0-9_.] (later scripts add integer placeholders, see
-- sql/README.md); no user-supplied value is ever spliced in.
-- Everything a caller passes at run time (table names, channel, consumer names) travels as a
-- bind parameter and is quoted server-side with format('%I' / '%L').
--
-- Later versions replace its capture functions (003, 004, 006), the transaction registration
-- (004) and the position trigger (005, 007); sql/README.md describes the current flow.

-- One row: installation-wide settings read by the commit trigger.
CREATE TABLE __SCHEMA__.settings (
    id              boolean     PRIMARY KEY DEFAULT true CHECK (id),
    schema_name     text        NOT NULL,
    channel         text        NOT NULL,
    trigger_prefix  text        NOT NULL
);

-- The durable change log: one row per captured row change (one per TRUNCATE statement).
-- Rows are grouped by transaction; the delivery order is (transactions.position, event_id).
CREATE TABLE __SCHEMA__.events (
    xid             xid8        NOT NULL,
    -- Only the order within one transaction matters, and one transaction runs in one session,
    -- so the identity may cache values per session.
    event_id        bigint      NOT NULL GENERATED ALWAYS AS IDENTITY (CACHE 100),
    schema_name     text        NOT NULL,
    table_name      text        NOT NULL,
    operation       text        NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
    row_data        jsonb,
    old_row_data    jsonb,
    captured_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (xid, event_id)
);

-- One row per event-producing transaction. The row is inserted (position NULL) by the first
-- capture in the transaction; the deferred constraint trigger below fills in the position at
-- pre-commit. A rolled-back transaction leaves no row, so readers never see its events.
CREATE TABLE __SCHEMA__.transactions (
    xid             xid8        PRIMARY KEY,
    position        bigint      UNIQUE,
    committed_at    timestamptz
);

-- Positions must be handed out in strictly increasing order across all sessions: CACHE 1 is
-- required (a per-session cache would break the hole-resolution argument of the reader).
CREATE SEQUENCE __SCHEMA__.position_seq AS bigint MINVALUE 1 START 1 CACHE 1 NO CYCLE;

-- Consumer cursors: each named consumer reads the shared log independently.
CREATE TABLE __SCHEMA__.consumers (
    name            text        PRIMARY KEY,
    position        bigint      NOT NULL DEFAULT 0,
    event_id        bigint      NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Registers the current transaction the first time it captures something (and again if its
-- position was already assigned early by SET CONSTRAINTS ... IMMEDIATE, so that the position is
-- always taken after the transaction's last write). The transaction-local setting makes the
-- common path a single current_setting() call; it is rolled back together with a savepoint.
CREATE FUNCTION __SCHEMA__.register_transaction(p_xid xid8) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    IF current_setting('__TXKEY__', true) IS DISTINCT FROM p_xid::text THEN
        INSERT INTO __SCHEMA__.transactions (xid) VALUES (p_xid)
            ON CONFLICT (xid) DO UPDATE SET position = NULL, committed_at = NULL;
        PERFORM set_config('__TXKEY__', p_xid::text, true);
    END IF;
END
$fn$;

-- Runs at pre-commit, once per transaction, after all of the transaction's writes.
CREATE FUNCTION __SCHEMA__.assign_position() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_channel text;
BEGIN
    UPDATE __SCHEMA__.transactions
       SET position = nextval('__SCHEMA__.position_seq'), committed_at = clock_timestamp()
     WHERE xid = NEW.xid;
    -- A later capture in this same transaction must register it again.
    PERFORM set_config('__TXKEY__', '', true);
    SELECT channel INTO v_channel FROM __SCHEMA__.settings;
    -- A constant payload: identical notifications collapse into one per transaction, and the row
    -- itself never travels through the 8000-byte notification queue.
    PERFORM pg_notify(v_channel, '');
    RETURN NULL;
END
$fn$;

CREATE CONSTRAINT TRIGGER assign_position
    AFTER INSERT OR UPDATE ON __SCHEMA__.transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.position IS NULL)
    EXECUTE FUNCTION __SCHEMA__.assign_position();

-- Capture functions, shared by every tracked table (PL/pgSQL caches a plan per table).
CREATE FUNCTION __SCHEMA__.capture_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_count bigint;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'INSERT', to_jsonb(r) FROM pgevents_new_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM __SCHEMA__.register_transaction(v_xid);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION __SCHEMA__.capture_delete() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_count bigint;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'DELETE', to_jsonb(r) FROM pgevents_old_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 THEN
        PERFORM __SCHEMA__.register_transaction(v_xid);
    END IF;
    RETURN NULL;
END
$fn$;

-- Updates are captured per row: transition tables give no reliable pairing of old and new
-- images, and the trigger's WHEN clause drops no-op updates before any function is called.
CREATE FUNCTION __SCHEMA__.capture_update() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, old_row_data)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'UPDATE', to_jsonb(NEW), to_jsonb(OLD));
    PERFORM __SCHEMA__.register_transaction(v_xid);
    RETURN NULL;
END
$fn$;

CREATE FUNCTION __SCHEMA__.capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'TRUNCATE');
    PERFORM __SCHEMA__.register_transaction(v_xid);
    RETURN NULL;
END
$fn$;

-- Installs the capture triggers on one table. Identifiers are quoted here, server-side.
CREATE FUNCTION __SCHEMA__.track_table(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text;
    v_kind "char";
BEGIN
    SELECT relkind INTO v_kind FROM pg_class WHERE oid = p_table;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'PgEvents can only track ordinary or partitioned tables; % is not one', p_table
            USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT trigger_prefix INTO v_prefix FROM __SCHEMA__.settings;
    PERFORM __SCHEMA__.untrack_table(p_table);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS pgevents_new_rows '
        'FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_insert()',
        v_prefix || '_insert', p_table, (SELECT schema_name FROM __SCHEMA__.settings));
    EXECUTE format(
        'CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) '
        'EXECUTE FUNCTION %I.capture_update()',
        v_prefix || '_update', p_table, (SELECT schema_name FROM __SCHEMA__.settings));
    EXECUTE format(
        'CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS pgevents_old_rows '
        'FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_delete()',
        v_prefix || '_delete', p_table, (SELECT schema_name FROM __SCHEMA__.settings));
    EXECUTE format(
        'CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_truncate()',
        v_prefix || '_truncate', p_table, (SELECT schema_name FROM __SCHEMA__.settings));
END
$fn$;

CREATE FUNCTION __SCHEMA__.untrack_table(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text;
    v_op text;
BEGIN
    SELECT trigger_prefix INTO v_prefix FROM __SCHEMA__.settings;
    FOREACH v_op IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_prefix || '_' || v_op, p_table);
    END LOOP;
END
$fn$;
