-- PgEvents schema, version 9: each consumer reads only the tables it subscribes to.
--
-- A consumer's subscription is the set of tables it maps, recorded in its row when it starts
-- (subscribe). The library's reader filters events by it, so events of other consumers' tables
-- are neither delivered nor blocked on: the consumer passes over their transactions like
-- positions that hold nothing for it, and its cursor moves past them.
--
-- Tables by name, as events carry them, plus the current names of the subscribed tables'
-- relations: a mapped table renamed while the consumer runs still reaches it (under its new name,
-- which has no handler, so the unmapped-table policy stops it) instead of being filtered out.
--
-- A table the consumer mapped before and no longer maps is "retired": its events up to the head
-- of the log when the new subscription was recorded were committed while it was subscribed, so
-- they are still delivered (with no handler left, the unmapped-table policy decides: Block by
-- default, or Skip, which logs each one); its later events are not the consumer's. Consumers from
-- before this version read every table: the backlog they have not read yet keeps that rule
-- (retired_all).

ALTER TABLE __SCHEMA__.consumers
    ADD COLUMN subscribed_schemas text[],
    ADD COLUMN subscribed_tables  text[],
    ADD COLUMN subscribed_relations oid[],
    ADD COLUMN retired_schemas    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN retired_tables     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN retired_all        boolean NOT NULL DEFAULT false,
    ADD COLUMN retired_before     bigint NOT NULL DEFAULT 0;

UPDATE __SCHEMA__.consumers
   SET retired_all = true, retired_before = (SELECT coalesce(max(position), 0) FROM __SCHEMA__.transactions);

-- Records p_consumer's subscription (the row exists: the consumer registers before it subscribes).
CREATE FUNCTION __SCHEMA__.subscribe(p_consumer text, p_schemas text[], p_tables text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    c __SCHEMA__.consumers;
    v_head bigint := (SELECT coalesce(max(position), 0) FROM __SCHEMA__.transactions);
    v_removed_schemas text[];
    v_removed_tables text[];
BEGIN
    SELECT * INTO c FROM __SCHEMA__.consumers WHERE name = p_consumer FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'PgEvents consumer % is not registered', p_consumer USING ERRCODE = 'P0002';
    END IF;
    IF c.position > c.retired_before THEN
        -- The cursor has passed everything retired.
        c.retired_all := false;
        c.retired_schemas := '{}';
        c.retired_tables := '{}';
        c.retired_before := 0;
    END IF;
    IF c.subscribed_schemas IS NOT NULL THEN
        SELECT array_agg(s ORDER BY s, t), array_agg(t ORDER BY s, t) INTO v_removed_schemas, v_removed_tables
          FROM (SELECT unnest(c.subscribed_schemas) AS s, unnest(c.subscribed_tables) AS t
                EXCEPT SELECT unnest(p_schemas), unnest(p_tables)
                EXCEPT SELECT unnest(c.retired_schemas), unnest(c.retired_tables)) AS removed;
        IF v_removed_schemas IS NOT NULL THEN
            c.retired_schemas := c.retired_schemas || v_removed_schemas;
            c.retired_tables := c.retired_tables || v_removed_tables;
            c.retired_before := greatest(c.retired_before, v_head);
        END IF;
    END IF;
    UPDATE __SCHEMA__.consumers
       SET subscribed_schemas = p_schemas, subscribed_tables = p_tables,
           subscribed_relations = ARRAY(SELECT to_regclass(format('%I.%I', s, t))::oid FROM unnest(p_schemas, p_tables) AS m(s, t)
                                         WHERE to_regclass(format('%I.%I', s, t)) IS NOT NULL),
           retired_schemas = c.retired_schemas, retired_tables = c.retired_tables,
           retired_all = c.retired_all, retired_before = c.retired_before
     WHERE name = p_consumer;
END
$fn$;

-- The tables whose events p_consumer reads, as (schema, table) pairs: its subscription, the current
-- names of its subscribed relations, and its retired tables with the position they count up to.
-- No rows for a consumer that never subscribed (a reader outside a consumer): it reads everything.
CREATE FUNCTION __SCHEMA__.subscription(p_consumer text)
RETURNS TABLE (schema_name text, table_name text, up_to bigint)
LANGUAGE sql STABLE AS $fn$
    SELECT s.schema_name, s.table_name, NULL::bigint
      FROM __SCHEMA__.consumers c, unnest(c.subscribed_schemas, c.subscribed_tables) AS s(schema_name, table_name)
     WHERE c.name = p_consumer
    UNION
    SELECT n.nspname, r.relname, NULL::bigint
      FROM __SCHEMA__.consumers c
      JOIN pg_catalog.pg_class r ON r.oid = ANY(c.subscribed_relations)
      JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
     WHERE c.name = p_consumer
    UNION
    SELECT s.schema_name, s.table_name, c.retired_before
      FROM __SCHEMA__.consumers c, unnest(c.retired_schemas, c.retired_tables) AS s(schema_name, table_name)
     WHERE c.name = p_consumer
$fn$;
