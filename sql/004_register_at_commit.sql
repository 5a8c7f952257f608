-- PgEvents schema, version 4: the commit record is written once, at pre-commit.
--
-- Until version 3 the first capture of a transaction inserted its row into transactions (position
-- NULL) only so that a deferred constraint trigger on that table would fire at commit and update
-- it: two writes of the same row, each with two index entries. Now the first event row of the
-- transaction carries opens_transaction = true, the deferred trigger sits on events with a WHEN
-- clause (evaluated when the row is written, so only that one row queues it), and it inserts the
-- commit record directly. PostgreSQL adds the column without rewriting the table.
--
-- Later versions replace these capture functions (005, 006) and the position trigger (005, 007);
-- sql/README.md describes the current flow.

ALTER TABLE __SCHEMA__.events ADD COLUMN opens_transaction boolean NOT NULL DEFAULT false;

DROP TRIGGER assign_position ON __SCHEMA__.transactions;
DROP FUNCTION __SCHEMA__.register_transaction(xid8);

CREATE OR REPLACE FUNCTION __SCHEMA__.assign_position() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- A conflict means SET CONSTRAINTS ... IMMEDIATE assigned a position earlier and the
    -- transaction wrote again since: it takes a new, later position, as late as possible.
    INSERT INTO __SCHEMA__.transactions (xid, position, committed_at)
    VALUES (NEW.xid, nextval('__SCHEMA__.position_seq'), clock_timestamp())
    ON CONFLICT (xid) DO UPDATE SET position = EXCLUDED.position, committed_at = EXCLUDED.committed_at;
    -- A later capture in this same transaction must open it again.
    PERFORM set_config('__TXKEY__', '', true);
    PERFORM pg_notify((SELECT channel FROM __SCHEMA__.settings), '');
    RETURN NULL;
END
$fn$;

CREATE CONSTRAINT TRIGGER assign_position
    AFTER INSERT ON __SCHEMA__.events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.opens_transaction)
    EXECUTE FUNCTION __SCHEMA__.assign_position();

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
    v_count bigint;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'INSERT', to_jsonb(r), v_opens AND row_number() OVER () = 1
      FROM pgevents_new_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_opens AND v_count > 0 THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_delete() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
    v_count bigint;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'DELETE', to_jsonb(r), v_opens AND row_number() OVER () = 1
      FROM pgevents_old_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_opens AND v_count > 0 THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_update() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, old_row_data, opens_transaction)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'UPDATE', to_jsonb(NEW), to_jsonb(OLD), v_opens);
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, opens_transaction)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'TRUNCATE', v_opens);
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;
