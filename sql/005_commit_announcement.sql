-- PgEvents schema, version 5: a transaction announces itself before it takes a position.
--
-- A missing position (a "hole") is either a transaction still between taking its position and
-- becoming visible, or one that failed after taking it. Version 4 told the two apart from the
-- reader's snapshot, which is wrong twice over: a snapshot's xip list omits running transactions
-- whose xid is at or above its xmax, so a holder delayed after taking its position (a deferred
-- foreign key waiting on a row lock, a slow user trigger) could be passed over; and it made a
-- burnt position wait for every transaction that merely held an xid.
--
-- Now the position trigger first takes a transaction-level advisory lock whose key is this
-- schema's commit-lock class and the transaction's 32-bit xid, then calls nextval. PostgreSQL
-- releases transaction locks only after the commit is visible to new snapshots (or after the
-- abort), and rolls them back with a savepoint together with the position they guard. So the
-- holders of that lock class are exactly the transactions that took, or are taking, a position
-- and can still commit it; the reader waits for those and for nobody else.
--
-- __COMMITLOCK__ is a non-negative integer the installer derives from the schema name.
--
-- Version 6 replaces these capture functions and version 7 the position trigger (keeping its
-- lock); sql/README.md describes the current flow.

CREATE OR REPLACE FUNCTION __SCHEMA__.assign_position() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock((__COMMITLOCK__::bigint << 32) | (NEW.xid::text::bigint & 4294967295));
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

-- The captures mark the transaction open *before* writing the opening event row. When
-- constraints were made IMMEDIATE, the position trigger fires inside that very INSERT and clears
-- the mark; marking afterwards (as version 4 did) overwrote the clearing, so later writes of the
-- transaction took no new position and could sort before a transaction they had read from.

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
    v_count bigint;
BEGIN
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'INSERT', to_jsonb(r), v_opens AND row_number() OVER () = 1
      FROM pgevents_new_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_opens AND v_count = 0 THEN
        -- Nothing was written, so nothing opened the transaction.
        PERFORM set_config('__TXKEY__', '', true);
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
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'DELETE', to_jsonb(r), v_opens AND row_number() OVER () = 1
      FROM pgevents_old_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_opens AND v_count = 0 THEN
        PERFORM set_config('__TXKEY__', '', true);
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
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, old_row_data, opens_transaction)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'UPDATE', to_jsonb(NEW), to_jsonb(OLD), v_opens);
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
BEGIN
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, opens_transaction)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'TRUNCATE', v_opens);
    RETURN NULL;
END
$fn$;
