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
-- of the log when the subscription that dropped it was recorded were committed while it was
-- subscribed, so they are still delivered (with no handler left, the unmapped-table policy decides: Block by
-- default, or Skip, which logs each one); its later events are not the consumer's. Each retired
-- table has its own bound (retired_up_to): unsubscribing another table later must not extend it,
-- and a table re-added then dropped again counts up to its latest removal. Consumers from
-- before this version read every table: the backlog they have not read yet keeps that rule
-- (retired_all).

ALTER TABLE __SCHEMA__.consumers
    ADD COLUMN subscribed_schemas text[],
    ADD COLUMN subscribed_tables  text[],
    ADD COLUMN subscribed_relations oid[],
    ADD COLUMN retired_schemas    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN retired_tables     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN retired_up_to      bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN retired_all        boolean NOT NULL DEFAULT false,
    ADD COLUMN retired_before     bigint NOT NULL DEFAULT 0;

UPDATE __SCHEMA__.consumers
   SET retired_all = true,
       retired_before = greatest((SELECT coalesce(max(position), 0) FROM __SCHEMA__.transactions),
                                 (SELECT purged_through FROM __SCHEMA__.settings));

-- Records p_consumer's subscription (the row exists: the consumer registers before it subscribes).
CREATE FUNCTION __SCHEMA__.subscribe(p_consumer text, p_schemas text[], p_tables text[]) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    c __SCHEMA__.consumers;
    -- The head even when retention purged every transaction.
    v_head bigint := greatest((SELECT coalesce(max(position), 0) FROM __SCHEMA__.transactions),
                              (SELECT purged_through FROM __SCHEMA__.settings));
BEGIN
    SELECT * INTO c FROM __SCHEMA__.consumers WHERE name = p_consumer FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'PgEvents consumer % is not registered', p_consumer USING ERRCODE = 'P0002';
    END IF;
    IF c.position > c.retired_before THEN
        -- The cursor has passed the backlog from before subscriptions.
        c.retired_all := false;
        c.retired_before := 0;
    END IF;
    -- Retired tables the cursor has not passed keep their bound; tables dropped from the subscription
    -- now count up to the head (a table dropped before, re-added and dropped again: its latest removal).
    SELECT coalesce(array_agg(m.s ORDER BY m.s, m.t), '{}'), coalesce(array_agg(m.t ORDER BY m.s, m.t), '{}'),
           coalesce(array_agg(m.u ORDER BY m.s, m.t), '{}')
      INTO c.retired_schemas, c.retired_tables, c.retired_up_to
      FROM (SELECT r.s, r.t, max(r.u) AS u
              FROM (SELECT k.s, k.t, k.u FROM unnest(c.retired_schemas, c.retired_tables, c.retired_up_to) AS k(s, t, u)
                     WHERE k.u >= c.position
                    UNION ALL
                    SELECT d.s, d.t, v_head
                      FROM (SELECT unnest(c.subscribed_schemas) AS s, unnest(c.subscribed_tables) AS t
                            EXCEPT SELECT unnest(p_schemas), unnest(p_tables)) AS d) AS r
             GROUP BY r.s, r.t) AS m;
    UPDATE __SCHEMA__.consumers
       SET subscribed_schemas = p_schemas, subscribed_tables = p_tables,
           subscribed_relations = ARRAY(SELECT to_regclass(format('%I.%I', s, t))::oid FROM unnest(p_schemas, p_tables) AS m(s, t)
                                         WHERE to_regclass(format('%I.%I', s, t)) IS NOT NULL),
           retired_schemas = c.retired_schemas, retired_tables = c.retired_tables, retired_up_to = c.retired_up_to,
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
    SELECT s.schema_name, s.table_name, s.up_to
      FROM __SCHEMA__.consumers c, unnest(c.retired_schemas, c.retired_tables, c.retired_up_to) AS s(schema_name, table_name, up_to)
     WHERE c.name = p_consumer
$fn$;
