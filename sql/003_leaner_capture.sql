-- PgEvents schema, version 3: a leaner write path.
--
-- Each capture registers its transaction inline instead of calling register_transaction(): the
-- nested PL/pgSQL call was a measurable share of a single-row transaction's cost. The position
-- trigger reads the channel once per session (a custom setting) instead of querying settings on
-- every commit.
--
-- Later versions replace these capture functions (004, 006) and the position trigger (004);
-- sql/README.md describes the current flow.

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

-- Tracking an already tracked table changes nothing and takes no lock: CREATE TRIGGER needs a
-- SHARE ROW EXCLUSIVE lock on the table, which would wait for open writers and make every later
-- writer wait behind it, each time a consumer starts.
CREATE OR REPLACE FUNCTION __SCHEMA__.track_table(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text;
    v_schema text;
    v_kind "char";
BEGIN
    SELECT relkind INTO v_kind FROM pg_class WHERE oid = p_table;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'PgEvents can only track ordinary or partitioned tables; % is not one', p_table
            USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT trigger_prefix, schema_name INTO v_prefix, v_schema FROM __SCHEMA__.settings;
    IF (SELECT count(*) FROM pg_trigger t
         WHERE t.tgrelid = p_table AND NOT t.tgisinternal
           AND (t.tgname, t.tgfoid) IN (
                (v_prefix || '_insert', '__SCHEMA__.capture_insert'::regproc::oid),
                (v_prefix || '_update', '__SCHEMA__.capture_update'::regproc::oid),
                (v_prefix || '_delete', '__SCHEMA__.capture_delete'::regproc::oid),
                (v_prefix || '_truncate', '__SCHEMA__.capture_truncate'::regproc::oid))) = 4 THEN
        RETURN;
    END IF;
    PERFORM __SCHEMA__.untrack_table(p_table);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS pgevents_new_rows '
        'FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_insert()', v_prefix || '_insert', p_table, v_schema);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) '
        'EXECUTE FUNCTION %I.capture_update()', v_prefix || '_update', p_table, v_schema);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS pgevents_old_rows '
        'FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_delete()', v_prefix || '_delete', p_table, v_schema);
    EXECUTE format(
        'CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_truncate()',
        v_prefix || '_truncate', p_table, v_schema);
END
$fn$;
