using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>
/// Tables for driving transactions step by step: a tracked <c>items</c> table, a <c>gate</c> whose
/// deferred trigger runs after the PgEvents commit trigger (it can block on an advisory lock held by
/// the test, pause, or fail the commit), and a child table with a deferred foreign key.
/// </summary>
internal static class OrderingTable
{
    public const long GateLock = 4242;

    public static async Task<PgEventsSchema> CreateAsync(DatabaseFixture db)
    {
        var schema = await db.InstallAsync();
        await db.ExecuteAsync(
            $$"""
            CREATE TABLE items (id int PRIMARY KEY, value text NOT NULL);
            CREATE TABLE gate (id serial PRIMARY KEY, action text NOT NULL);
            CREATE FUNCTION gate_check() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.action IN ('wait', 'wait-then-fail') THEN
                    PERFORM pg_advisory_xact_lock({{GateLock}});
                END IF;
                IF NEW.action = 'pause' THEN
                    -- Slow work after the position was taken, as a user's deferred trigger may do.
                    PERFORM pg_sleep(0.002);
                END IF;
                IF NEW.action IN ('fail', 'wait-then-fail') THEN
                    RAISE EXCEPTION 'gate refused the commit';
                END IF;
                RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER gate_check AFTER INSERT ON gate
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gate_check();
            CREATE TABLE parents (id int PRIMARY KEY);
            CREATE TABLE children (id int PRIMARY KEY,
                parent_id int NOT NULL REFERENCES parents DEFERRABLE INITIALLY DEFERRED);
            """);
        await schema.TrackTableAsync(new TableName("public", "items"));
        await schema.TrackTableAsync(new TableName("public", "children"));
        return schema;
    }

    public static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Waits until a session is blocked on the gate's advisory lock: a real signal, not a sleep.</summary>
    public static Task WaitUntilBlockedAtGateAsync(DatabaseFixture db, int sessions = 1) =>
        Eventually.UntilAsync(
            async () => await db.ScalarAsync<long>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid::bigint = @lock",
                ("lock", (long)(uint)GateLock)) >= sessions,
            sessions == 1 ? "the committing transaction should reach the gate" : $"{sessions} committing transactions should reach the gate");
}
