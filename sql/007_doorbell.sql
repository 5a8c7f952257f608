-- PgEvents schema, version 7: NOTIFY only while a consumer sleeps.
--
-- PostgreSQL serializes the commits of every NOTIFYing transaction in the cluster on one lock
-- held until the commit is flushed, so a NOTIFY per transaction made busy writers commit one at a
-- time. A consumer that has nothing to read holds a shared session advisory lock (the "doorbell")
-- while it sleeps; the position trigger rings only when it cannot take that lock exclusively. Under
-- load consumers never sleep, nobody rings, and writers commit in parallel.
--
-- The check is a lock, not a table read, so it sees a consumer that went to sleep after the
-- writer's snapshot was taken (REPEATABLE READ writers). It comes after the commit-phase lock: a
-- writer that looked before the consumer took the doorbell was already in its commit phase then,
-- and the consumer, after taking the doorbell, waits for every transaction in its commit phase
-- and reads once more before it sleeps. So no commit is left without a wake-up.
--
-- __SLEEPCLASS__ and __SLEEPKEY__ are integers the installer derives from the schema name.

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
    IF pg_try_advisory_lock(__SLEEPCLASS__, __SLEEPKEY__) THEN
        -- Nobody sleeps. (Another writer checking at this very moment rings needlessly: harmless.)
        PERFORM pg_advisory_unlock(__SLEEPCLASS__, __SLEEPKEY__);
    ELSE
        PERFORM pg_notify((SELECT channel FROM __SCHEMA__.settings), '');
    END IF;
    RETURN NULL;
END
$fn$;
