-- PgEvents schema, version 6: capture every change of every tracked table, in the order it
-- happened, and never fail the application's write.
--
-- * Row-level AFTER triggers for INSERT, UPDATE and DELETE replace the statement-level ones with
--   transition tables. PostgreSQL clones row-level triggers of a partitioned table to every
--   partition, existing, created later or attached later (statement-level ones it does not), so a
--   write aimed at a partition and a row moving between partitions (a DELETE in the old partition
--   and an INSERT in the new one) are captured. Their names start with '!' so that, for each row,
--   they fire before any user trigger named with a letter, digit or '_': a user's AFTER trigger
--   that changes the row just inserted is then logged after that insert, as it happened.
-- * The no-op filter compares record images (*<>): it needs no equality operator (json, point,
--   xml broke UPDATEs) and drops an update only when the stored row is byte-identical (citext
--   'Bob' -> 'bob' and numeric 1.0 -> 1.00 are real changes).
-- * Each trigger carries the tracked table's oid. A change of a partition or an inheritance child
--   is logged under the tracked table's current name, and so is a renamed table's.
-- * Capture and the position trigger are ENABLE ALWAYS (unless settings say otherwise for capture),
--   so writes made with session_replication_role = replica are captured, and an event row can never
--   exist without its transaction's position.

ALTER TABLE __SCHEMA__.settings ADD COLUMN capture_replica_writes boolean NOT NULL DEFAULT true;

ALTER TABLE __SCHEMA__.events ENABLE ALWAYS TRIGGER assign_position;

-- The tracked table's schema and name, looked up only for a partition or a child.
CREATE FUNCTION __SCHEMA__.tracked_name(p_table oid, OUT schema_name text, OUT table_name text)
LANGUAGE sql STABLE AS $fn$
    SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table
$fn$;

CREATE FUNCTION __SCHEMA__.capture_row() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
    v_schema text := TG_TABLE_SCHEMA;
    v_table text := TG_TABLE_NAME;
BEGIN
    IF TG_RELID <> TG_ARGV[0]::oid THEN
        SELECT t.schema_name, t.table_name INTO v_schema, v_table FROM __SCHEMA__.tracked_name(TG_ARGV[0]::oid) t;
    END IF;
    -- Marked before the event row is written: see version 5.
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction)
        VALUES (v_xid, v_schema, v_table, 'INSERT', to_jsonb(NEW), v_opens);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, old_row_data, opens_transaction)
        VALUES (v_xid, v_schema, v_table, 'UPDATE', to_jsonb(NEW), to_jsonb(OLD), v_opens);
    ELSE
        INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction)
        VALUES (v_xid, v_schema, v_table, 'DELETE', to_jsonb(OLD), v_opens);
    END IF;
    RETURN NULL;
END
$fn$;

-- TRUNCATE of the tracked table (with all its partitions or children) is one TRUNCATE event. A
-- TRUNCATE that empties only part of it (a partition, a child, or ONLY the parent of children)
-- must not empty the whole table downstream: it is logged as a DELETE of each row it removes,
-- read here, before the truncation. The tracked table's BEFORE trigger fires first and marks the
-- statement, so the partitions truncated with it know they are covered.
CREATE FUNCTION __SCHEMA__.capture_truncate_before() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean;
    v_schema text;
    v_table text;
    v_count bigint;
BEGIN
    IF TG_RELID = TG_ARGV[0]::oid THEN
        IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = TG_RELID) = 'p'
           OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhparent = TG_RELID) THEN
            -- Everything goes: the AFTER trigger logs one TRUNCATE.
            PERFORM set_config('__TXKEY___truncating', TG_ARGV[0], true);
            RETURN NULL;
        END IF;
        -- A parent of inheritance children: its children may survive (TRUNCATE ONLY).
        PERFORM set_config('__TXKEY___truncating', '', true);
    ELSIF current_setting('__TXKEY___truncating', true) = TG_ARGV[0]
          OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = TG_RELID) <> 'r' THEN
        -- Covered by the TRUNCATE of the tracked table, or a partitioned partition whose leaves
        -- report their own rows.
        RETURN NULL;
    END IF;
    SELECT t.schema_name, t.table_name INTO v_schema, v_table FROM __SCHEMA__.tracked_name(TG_ARGV[0]::oid) t;
    v_opens := current_setting('__TXKEY__', true) IS DISTINCT FROM v_xid::text;
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    EXECUTE format(
        'INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction) '
        'SELECT $1, $2, $3, ''DELETE'', to_jsonb(r), $4 AND row_number() OVER () = 1 FROM ONLY %s AS r',
        TG_RELID::regclass)
        USING v_xid, v_schema, v_table, v_opens;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    IF v_opens AND v_count = 0 THEN
        PERFORM set_config('__TXKEY__', '', true);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION __SCHEMA__.capture_truncate_after() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    v_xid xid8 := pg_current_xact_id();
    v_opens boolean := current_setting('__TXKEY__', true) IS DISTINCT FROM pg_current_xact_id()::text;
BEGIN
    IF TG_RELID <> TG_ARGV[0]::oid OR current_setting('__TXKEY___truncating', true) IS DISTINCT FROM TG_ARGV[0] THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('__TXKEY___truncating', '', true);
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, opens_transaction)
    VALUES (v_xid, TG_TABLE_SCHEMA, TG_TABLE_NAME, 'TRUNCATE', v_opens);
    RETURN NULL;
END
$fn$;

-- The tracked table and every table whose rows it holds: partitions at any depth and
-- inheritance children at any depth.
CREATE FUNCTION __SCHEMA__.tracked_members(p_table regclass) RETURNS TABLE (member oid, is_partition boolean)
LANGUAGE sql STABLE AS $fn$
    WITH RECURSIVE tree(member, is_partition) AS (
        SELECT p_table::oid, false
        UNION
        SELECT i.inhrelid, c.relispartition
          FROM tree JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.member
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    )
    SELECT member, is_partition FROM tree
$fn$;

-- What is wrong with the capture of one table, one line per problem; empty when all is well.
CREATE FUNCTION __SCHEMA__.tracking_problems(p_table regclass) RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    v_prefix text;
    v_expected "char";
    v_actual "char";
    r record;
BEGIN
    SELECT trigger_prefix, CASE WHEN capture_replica_writes THEN 'A' ELSE 'O' END
      INTO v_prefix, v_expected FROM __SCHEMA__.settings;
    FOR r IN
        SELECT m.member::regclass AS member, x.name, x.fn
          FROM __SCHEMA__.tracked_members(p_table) m
         CROSS JOIN (VALUES
                ('!' || v_prefix || '_insert', '__SCHEMA__.capture_row'::regproc::oid),
                ('!' || v_prefix || '_update', '__SCHEMA__.capture_row'::regproc::oid),
                ('!' || v_prefix || '_delete', '__SCHEMA__.capture_row'::regproc::oid),
                (v_prefix || '_truncate_before', '__SCHEMA__.capture_truncate_before'::regproc::oid),
                (v_prefix || '_truncate', '__SCHEMA__.capture_truncate_after'::regproc::oid)) AS x(name, fn)
    LOOP
        SELECT t.tgenabled INTO v_actual
          FROM pg_catalog.pg_trigger t
         WHERE t.tgrelid = r.member AND t.tgname = r.name AND t.tgfoid = r.fn
           AND t.tgargs = convert_to(p_table::oid::text, 'UTF8') || '\x00'::bytea;
        IF NOT FOUND THEN
            RETURN NEXT format('trigger %I is missing on %s', r.name, r.member);
        ELSIF v_actual <> v_expected THEN
            RETURN NEXT format('trigger %I on %s is %s', r.name, r.member,
                CASE v_actual WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'enabled for replica sessions only'
                              WHEN 'A' THEN 'enabled always, but capture_replica_writes is off'
                              ELSE 'not enabled for sessions with session_replication_role = replica' END);
        END IF;
    END LOOP;
END
$fn$;

-- Installs (or repairs) the capture triggers of one table and of every partition and child.
-- Tracking a correctly tracked table changes nothing and takes no lock: CREATE TRIGGER and ALTER
-- TABLE need a SHARE ROW EXCLUSIVE lock, which would queue every later writer behind it.
CREATE OR REPLACE FUNCTION __SCHEMA__.track_table(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text;
    v_schema text;
    v_always boolean;
    v_kind "char";
    v_ispartition boolean;
    v_name text;
    r record;
BEGIN
    SELECT relkind, relispartition INTO v_kind, v_ispartition FROM pg_catalog.pg_class WHERE oid = p_table;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'PgEvents can only track ordinary or partitioned tables; % is not one', p_table
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM __SCHEMA__.tracking_problems(p_table)) THEN
        RETURN;
    END IF;
    SELECT trigger_prefix, schema_name, capture_replica_writes INTO v_prefix, v_schema, v_always FROM __SCHEMA__.settings;
    FOR r IN SELECT member::regclass AS member, is_partition FROM __SCHEMA__.tracked_members(p_table) LOOP
        -- Row triggers of a partition are clones of its parent's: they come and go with them.
        IF r.member::oid = p_table::oid OR NOT r.is_partition THEN
            PERFORM __SCHEMA__.untrack_table(r.member);
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %I.capture_row(%L)',
                '!' || v_prefix || '_insert', r.member, v_schema, p_table::oid::text);
            EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (OLD *<> NEW) EXECUTE FUNCTION %I.capture_row(%L)',
                '!' || v_prefix || '_update', r.member, v_schema, p_table::oid::text);
            EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %I.capture_row(%L)',
                '!' || v_prefix || '_delete', r.member, v_schema, p_table::oid::text);
        ELSE
            PERFORM __SCHEMA__.untrack_table(r.member);
        END IF;
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_truncate_before(%L)',
            v_prefix || '_truncate_before', r.member, v_schema, p_table::oid::text);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_truncate_after(%L)',
            v_prefix || '_truncate', r.member, v_schema, p_table::oid::text);
    END LOOP;
    -- Every member, clones included, so that no version depends on ALTER TABLE recursing.
    FOR r IN SELECT member::regclass AS member FROM __SCHEMA__.tracked_members(p_table) LOOP
        FOREACH v_name IN ARRAY ARRAY['!' || v_prefix || '_insert', '!' || v_prefix || '_update', '!' || v_prefix || '_delete',
                                      v_prefix || '_truncate_before', v_prefix || '_truncate'] LOOP
            EXECUTE format('ALTER TABLE %s ENABLE %s TRIGGER %I', r.member, CASE WHEN v_always THEN 'ALWAYS' ELSE '' END, v_name);
        END LOOP;
    END LOOP;
END
$fn$;

-- Drops only what exists: DROP TRIGGER IF EXISTS would send the client a notice per missing name.
CREATE OR REPLACE FUNCTION __SCHEMA__.untrack_table(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text;
    v_name text;
BEGIN
    SELECT trigger_prefix INTO v_prefix FROM __SCHEMA__.settings;
    FOR v_name IN
        SELECT t.tgname FROM pg_catalog.pg_trigger t
         WHERE t.tgrelid = p_table AND t.tgparentid = 0
           AND t.tgname = ANY (ARRAY[
                v_prefix || '_insert', v_prefix || '_update', v_prefix || '_delete', v_prefix || '_truncate',
                '!' || v_prefix || '_insert', '!' || v_prefix || '_update', '!' || v_prefix || '_delete',
                v_prefix || '_truncate_before'])
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_name, p_table);
    END LOOP;
END
$fn$;

-- Tables tracked by an earlier version get the new triggers now.
DO $do$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT DISTINCT t.tgrelid::regclass FROM pg_catalog.pg_trigger t
         WHERE t.tgfoid = '__SCHEMA__.capture_insert'::regproc::oid
    LOOP
        PERFORM __SCHEMA__.track_table(v_table);
    END LOOP;
END
$do$;
