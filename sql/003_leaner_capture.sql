-- PgEvents schema, version 3: a leaner write path.
--
-- Each capture registers its transaction inline instead of calling register_transaction(): the
-- nested PL/pgSQL call was a measurable share of a single-row transaction's cost. The position
-- trigger reads the channel once per session (a custom setting) instead of querying settings on
-- every commit.

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_insert() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_count bigint;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'INSERT', to_jsonb(r) FROM pgevents_new_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 AND current_setting('__TXKEY__', true) IS DISTINCT FROM v_xid::text THEN
        INSERT INTO __SCHEMA__.transactions (xid) VALUES (v_xid)
            ON CONFLICT (xid) DO UPDATE SET position = NULL, committed_at = NULL;
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_delete() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_count bigint;
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data)
    SELECT v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'DELETE', to_jsonb(r) FROM pgevents_old_rows r;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_count > 0 AND current_setting('__TXKEY__', true) IS DISTINCT FROM v_xid::text THEN
        INSERT INTO __SCHEMA__.transactions (xid) VALUES (v_xid)
            ON CONFLICT (xid) DO UPDATE SET position = NULL, committed_at = NULL;
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_update() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, old_row_data)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'UPDATE', to_jsonb(NEW), to_jsonb(OLD));
    IF current_setting('__TXKEY__', true) IS DISTINCT FROM v_xid::text THEN
        INSERT INTO __SCHEMA__.transactions (xid) VALUES (v_xid)
            ON CONFLICT (xid) DO UPDATE SET position = NULL, committed_at = NULL;
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.capture_truncate() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
BEGIN
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'TRUNCATE');
    IF current_setting('__TXKEY__', true) IS DISTINCT FROM v_xid::text THEN
        INSERT INTO __SCHEMA__.transactions (xid) VALUES (v_xid)
            ON CONFLICT (xid) DO UPDATE SET position = NULL, committed_at = NULL;
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION __SCHEMA__.assign_position() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE __SCHEMA__.transactions
       SET position = nextval('__SCHEMA__.position_seq'), committed_at = clock_timestamp()
     WHERE xid = NEW.xid;
    PERFORM set_config('__TXKEY__', '', true);
    PERFORM pg_notify((SELECT channel FROM __SCHEMA__.settings), '');
    RETURN NULL;
END
$fn$;
