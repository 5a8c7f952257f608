-- PgEvents schema, version 6: capture every change of every tracked table, in the order it
-- happened, and never fail the application's write.
--
-- * Row-level AFTER triggers for INSERT, UPDATE and DELETE replace the statement-level ones with
--   transition tables. PostgreSQL clones row-level triggers of a partitioned table to every
--   partition, existing, created later or attached later (statement-level ones it does not), so a
--   write aimed at a partition and a row moving between partitions (a DELETE in the old partition
--   and an INSERT in the new one) are captured. Their names start with '!' so that, for each row,
--   they fire before any user trigger named with a letter, digit or '_': a user's AFTER trigger
--   that changes the row just inserted is then logged after that insert, as it happened. The
--   TRUNCATE triggers are named the same way, so a user's AFTER TRUNCATE trigger that inserts
--   rows is logged after the TRUNCATE.
-- * The no-op filter compares record images (*<>): it needs no equality operator (json, point,
--   xml broke UPDATEs) and drops an update only when the stored row is byte-identical (citext
--   'Bob' -> 'bob' and numeric 1.0 -> 1.00 are real changes).
-- * Each trigger carries the tracked table's oid. A change of a partition or an inheritance child
--   is logged under the tracked table's current name, and so is a renamed table's.
-- * Capture and the position trigger are ENABLE ALWAYS (unless settings say otherwise for capture),
--   so writes made with session_replication_role = replica are captured, and an event row can never
--   exist without its transaction's position.

-- Writers lock events before they read settings (at commit): take events first, as they do, or
-- a writer open across the upgrade and this script would deadlock.
LOCK TABLE __SCHEMA__.events IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE __SCHEMA__.settings ADD COLUMN capture_replica_writes boolean NOT NULL DEFAULT true;

ALTER TABLE __SCHEMA__.events ENABLE ALWAYS TRIGGER assign_position;

-- The tracked table's schema and name, looked up only for a partition or a child.
CREATE FUNCTION __SCHEMA__.tracked_name(p_table oid, OUT schema_name text, OUT table_name text)
LANGUAGE sql STABLE AS $fn$
    SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = p_table
$fn$;

-- Whether p_member still holds rows of p_table: a child removed with NO INHERIT or a detached
-- partition keeps any trigger PostgreSQL does not remove by itself, and must not be logged as
-- part of a table it left.
CREATE FUNCTION __SCHEMA__.is_member(p_member oid, p_table oid) RETURNS boolean
LANGUAGE sql STABLE AS $fn$
    WITH RECURSIVE up(rel) AS (
        SELECT p_member
        UNION
        SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.rel
    )
    SELECT EXISTS (SELECT 1 FROM up WHERE rel = p_table)
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
        -- A partition's triggers are clones that PostgreSQL removes on DETACH; an inheritance
        -- child's (marked by a second argument) stay after NO INHERIT, so it is checked.
        IF TG_NARGS > 1 AND NOT __SCHEMA__.is_member(TG_RELID, TG_ARGV[0]::oid) THEN
            RETURN NULL;
        END IF;
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
    -- One mark per tracked table: one TRUNCATE statement may name several.
    v_mark text := '__TXKEY___truncating_' || TG_ARGV[0];
    v_opens boolean;
    v_schema text;
    v_table text;
    v_count bigint;
BEGIN
    IF TG_RELID = TG_ARGV[0]::oid THEN
        IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = TG_RELID) = 'p'
           OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhparent = TG_RELID) THEN
            -- Everything goes: the AFTER trigger logs one TRUNCATE.
            PERFORM set_config(v_mark, 'all', true);
            RETURN NULL;
        END IF;
        -- A parent of inheritance children: its children may survive (TRUNCATE ONLY).
        PERFORM set_config(v_mark, '', true);
    ELSIF current_setting(v_mark, true) = 'all'
          OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = TG_RELID) <> 'r'
          OR NOT __SCHEMA__.is_member(TG_RELID, TG_ARGV[0]::oid) THEN
        -- Covered by the TRUNCATE of the tracked table, a partitioned partition whose leaves
        -- report their own rows, or a table that is no longer part of the tracked one.
        RETURN NULL;
    END IF;
    -- Every removed row must be logged, read with the writer's privileges: refuse clearly rather
    -- than fail on a missing privilege or log only the rows a row-level security policy shows.
    IF NOT has_table_privilege(TG_RELID, 'SELECT') OR row_security_active(TG_RELID) THEN
        RAISE EXCEPTION 'PgEvents logs a TRUNCATE of part of the tracked table % as a delete of each removed row, and % cannot read all rows of %',
            TG_ARGV[0]::oid::regclass, current_user, TG_RELID::regclass
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Grant SELECT on it (with no row-level security policy hiding rows from this role), or truncate the tracked table as a whole.';
    END IF;
    SELECT t.schema_name, t.table_name INTO v_schema, v_table FROM __SCHEMA__.tracked_name(TG_ARGV[0]::oid) t;
    v_opens := current_setting('__TXKEY__', true) IS DISTINCT FROM v_xid::text;
    IF v_opens THEN
        PERFORM set_config('__TXKEY__', v_xid::text, true);
    END IF;
    -- ".*" makes it the whole row even if the table has a column of the alias's name.
    EXECUTE format(
        'INSERT INTO __SCHEMA__.events (xid, schema_name, table_name, operation, row_data, opens_transaction) '
        'SELECT $1, $2, $3, ''DELETE'', to_jsonb(pgevents_removed.*), $4 AND row_number() OVER () = 1 '
        'FROM ONLY %s AS pgevents_removed',
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
    v_mark text := '__TXKEY___truncating_' || TG_ARGV[0];
BEGIN
    IF TG_RELID <> TG_ARGV[0]::oid OR current_setting(v_mark, true) IS DISTINCT FROM 'all' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config(v_mark, '', true);
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

-- Every capture trigger of this installation: on which table, whether PostgreSQL cloned it from a
-- partitioned parent, and for which tracked table (its first argument) it captures.
CREATE FUNCTION __SCHEMA__.capture_triggers()
RETURNS TABLE (rel oid, name name, is_clone boolean, owner oid, enabled "char")
LANGUAGE sql STABLE AS $fn$
    SELECT t.tgrelid, t.tgname, t.tgparentid <> 0, split_part(encode(t.tgargs, 'escape'), '\000', 1)::oid, t.tgenabled
      FROM pg_catalog.pg_trigger t
     WHERE t.tgfoid IN ('__SCHEMA__.capture_row'::regproc, '__SCHEMA__.capture_truncate_before'::regproc,
                        '__SCHEMA__.capture_truncate_after'::regproc)
$fn$;

-- What is wrong with the capture of one table, one line per problem; empty when all is well.
CREATE FUNCTION __SCHEMA__.tracking_problems(p_table regclass) RETURNS SETOF text
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    v_prefix text;
    v_expected "char";
    r record;
BEGIN
    SELECT trigger_prefix, CASE WHEN capture_replica_writes THEN 'A' ELSE 'O' END
      INTO v_prefix, v_expected FROM __SCHEMA__.settings;
    -- One join reads the triggers once, rather than once per member and name.
    FOR r IN
        SELECT m.member, x.name, c.enabled
          FROM __SCHEMA__.tracked_members(p_table) m
         CROSS JOIN (VALUES ('!' || v_prefix || '_insert'), ('!' || v_prefix || '_update'), ('!' || v_prefix || '_delete'),
                            ('!' || v_prefix || '_truncate_before'), ('!' || v_prefix || '_truncate')) AS x(name)
          LEFT JOIN __SCHEMA__.capture_triggers() c ON c.rel = m.member AND c.name = x.name AND c.owner = p_table::oid
    LOOP
        IF r.enabled IS NULL THEN
            RETURN NEXT format('trigger %I is missing on %s', r.name, r.member::regclass);
        ELSIF r.enabled <> v_expected THEN
            RETURN NEXT format('trigger %I on %s is %s', r.name, r.member::regclass,
                CASE r.enabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'enabled for replica sessions only'
                               WHEN 'A' THEN 'enabled always, but capture_replica_writes is off'
                               ELSE 'not enabled for sessions with session_replication_role = replica' END);
        END IF;
    END LOOP;
    FOR r IN SELECT c.rel, c.name FROM __SCHEMA__.capture_triggers() c
              WHERE c.owner = p_table::oid AND NOT c.is_clone AND NOT __SCHEMA__.is_member(c.rel, p_table::oid)
    LOOP
        RETURN NEXT format('trigger %I on %s is left over: that table is no longer part of %s', r.name, r.rel::regclass, p_table);
    END LOOP;
END
$fn$;

-- Drops the capture triggers a table carries itself (not clones): all of them, or only those that
-- capture for p_owner; and those of versions before 6 when the table was tracked itself. Only what
-- exists: DROP TRIGGER IF EXISTS would send a notice per name.
CREATE FUNCTION __SCHEMA__.drop_capture_triggers(p_table regclass, p_owner oid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text;
    v_name name;
BEGIN
    SELECT trigger_prefix INTO v_prefix FROM __SCHEMA__.settings;
    FOR v_name IN
        SELECT c.name FROM __SCHEMA__.capture_triggers() c
         WHERE c.rel = p_table::oid AND NOT c.is_clone AND (p_owner IS NULL OR c.owner = p_owner)
        UNION
        SELECT t.tgname FROM pg_catalog.pg_trigger t
         WHERE t.tgrelid = p_table AND t.tgparentid = 0 AND (p_owner IS NULL OR p_owner = p_table::oid)
           AND t.tgname = ANY (ARRAY[v_prefix || '_insert', v_prefix || '_update', v_prefix || '_delete', v_prefix || '_truncate'])
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_name, p_table);
    END LOOP;
END
$fn$;

-- Installs (or repairs) the capture triggers of one table and of every partition and child.
-- Tracking a correctly tracked table changes nothing and takes no lock: CREATE TRIGGER and ALTER
-- TABLE need a SHARE ROW EXCLUSIVE lock, which would queue every later writer behind it. A table
-- is logged as part of one tracked table only: tracking a table takes over members that were
-- tracked on their own, and is refused for a table already captured as part of another one.
CREATE OR REPLACE FUNCTION __SCHEMA__.track_table(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_prefix text;
    v_schema text;
    v_always boolean;
    v_kind "char";
    v_name text;
    v_args text;
    v_member oid;
    v_owner oid;
    r record;
BEGIN
    SELECT relkind INTO v_kind FROM pg_catalog.pg_class WHERE oid = p_table;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'PgEvents can only track ordinary or partitioned tables; % is not one', p_table
            USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT c.owner INTO v_owner FROM __SCHEMA__.capture_triggers() c
     WHERE c.rel = p_table::oid AND c.owner <> p_table::oid AND __SCHEMA__.is_member(p_table::oid, c.owner) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is already captured as part of the tracked table %, under that name; track % only, or untrack it first',
            p_table, v_owner::regclass, v_owner::regclass USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT m.member, c.owner INTO v_member, v_owner
      FROM __SCHEMA__.tracked_members(p_table) m JOIN __SCHEMA__.capture_triggers() c ON c.rel = m.member
     WHERE c.owner <> p_table::oid AND __SCHEMA__.is_member(m.member, c.owner) AND NOT __SCHEMA__.is_member(c.owner, p_table::oid)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% belongs to % and to the tracked table %; PgEvents logs a table as part of one tracked table only',
            v_member::regclass, p_table, v_owner::regclass USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM __SCHEMA__.tracking_problems(p_table)) THEN
        RETURN;
    END IF;
    SELECT trigger_prefix, schema_name, capture_replica_writes INTO v_prefix, v_schema, v_always FROM __SCHEMA__.settings;
    -- First clear every member (a partition's own triggers would clash with the clones to come)
    -- and what is left on tables that are no longer members.
    FOR r IN SELECT member FROM __SCHEMA__.tracked_members(p_table)
             UNION SELECT c.rel FROM __SCHEMA__.capture_triggers() c WHERE c.owner = p_table::oid AND NOT c.is_clone LOOP
        PERFORM __SCHEMA__.drop_capture_triggers(r.member::regclass);
    END LOOP;
    FOR r IN SELECT member::regclass AS member, is_partition FROM __SCHEMA__.tracked_members(p_table) LOOP
        -- Row triggers of a partition are clones of its parent's: they come and go with them. A
        -- child's carry a second argument: they outlive NO INHERIT, so captures check membership.
        IF r.member::oid = p_table::oid OR NOT r.is_partition THEN
            v_args := format('%L', p_table::oid::text) || CASE WHEN r.member::oid = p_table::oid THEN '' ELSE ', ''child''' END;
            EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %I.capture_row(%s)',
                '!' || v_prefix || '_insert', r.member, v_schema, v_args);
            EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s FOR EACH ROW WHEN (OLD *<> NEW) EXECUTE FUNCTION %I.capture_row(%s)',
                '!' || v_prefix || '_update', r.member, v_schema, v_args);
            EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %I.capture_row(%s)',
                '!' || v_prefix || '_delete', r.member, v_schema, v_args);
        END IF;
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_truncate_before(%L)',
            '!' || v_prefix || '_truncate_before', r.member, v_schema, p_table::oid::text);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %I.capture_truncate_after(%L)',
            '!' || v_prefix || '_truncate', r.member, v_schema, p_table::oid::text);
    END LOOP;
    -- Every member, clones included, so that no version depends on ALTER TABLE recursing.
    FOR r IN SELECT member::regclass AS member FROM __SCHEMA__.tracked_members(p_table) LOOP
        FOREACH v_name IN ARRAY ARRAY['!' || v_prefix || '_insert', '!' || v_prefix || '_update', '!' || v_prefix || '_delete',
                                      '!' || v_prefix || '_truncate_before', '!' || v_prefix || '_truncate'] LOOP
            EXECUTE format('ALTER TABLE %s ENABLE %s TRIGGER %I', r.member, CASE WHEN v_always THEN 'ALWAYS' ELSE '' END, v_name);
        END LOOP;
    END LOOP;
END
$fn$;

-- Stops the capture of a tracked table: its triggers, its partitions' and children's, and any
-- left on tables that used to be part of it; never the capture of another tracked table.
CREATE OR REPLACE FUNCTION __SCHEMA__.untrack_table(p_table regclass) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    v_rel oid;
    v_owner oid;
BEGIN
    SELECT c.owner INTO v_owner FROM __SCHEMA__.capture_triggers() c
     WHERE c.rel = p_table::oid AND c.owner <> p_table::oid AND __SCHEMA__.is_member(p_table::oid, c.owner) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is captured as part of the tracked table %; untrack % to stop that', p_table, v_owner::regclass, v_owner::regclass
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    FOR v_rel IN SELECT p_table::oid
                 UNION SELECT c.rel FROM __SCHEMA__.capture_triggers() c WHERE c.owner = p_table::oid AND NOT c.is_clone LOOP
        PERFORM __SCHEMA__.drop_capture_triggers(v_rel::regclass, p_table::oid);
    END LOOP;
END
$fn$;

-- Tables tracked by an earlier version get the new triggers now; the deepest first, so that a
-- parent tracked as well takes its children over (they are logged under the parent's name from
-- now on, as every child of a tracked table is).
DO $do$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT t.rel::regclass FROM (
            SELECT DISTINCT tr.tgrelid AS rel FROM pg_catalog.pg_trigger tr
             WHERE tr.tgfoid = '__SCHEMA__.capture_insert'::regproc::oid) t
         ORDER BY (WITH RECURSIVE up(rel) AS (
                       SELECT t.rel UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.rel)
                   SELECT count(*) FROM up) DESC
    LOOP
        IF EXISTS (SELECT 1 FROM __SCHEMA__.capture_triggers() c
                    WHERE c.rel = v_table::oid AND c.owner <> v_table::oid AND __SCHEMA__.is_member(v_table::oid, c.owner)) THEN
            RAISE NOTICE 'PgEvents: % is now captured as part of its tracked parent %', v_table,
                (SELECT c.owner::regclass FROM __SCHEMA__.capture_triggers() c WHERE c.rel = v_table::oid LIMIT 1);
            CONTINUE;
        END IF;
        BEGIN
            PERFORM __SCHEMA__.track_table(v_table);
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            -- E.g. a child of two tracked parents: it stays with the one tracked first.
            RAISE WARNING 'PgEvents: %', SQLERRM;
        END;
    END LOOP;
END
$do$;
