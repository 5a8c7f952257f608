using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Second adversarial pass on TRUNCATE capture (schema v6): the per-tracked-table marks, the
/// deletes read just before a partial truncation, and where the TRUNCATE event lands among the
/// changes of the same statement.
/// </summary>
public sealed class CaptureSecondPassTruncateTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("second-pass-truncate", () => db.InstallAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    private static TableName T(string name) => new("public", name);

    private Task<LogDrain> TrackAsync(string ddl, params string[] tables) => LogDrain.TrackAsync(db, _schema, ddl, tables);

    [Fact]
    public async Task A_row_inserted_by_a_user_after_truncate_trigger_is_delivered_after_the_truncate()
    {
        // The row triggers are named '!…' to fire before user triggers; the TRUNCATE trigger is
        // named pgevents_truncate, so a user's AFTER TRUNCATE trigger named with 'a'..'o' runs first.
        var drain = await TrackAsync(
            """
            CREATE TABLE sp_cfg (id int PRIMARY KEY, value text);
            CREATE FUNCTION sp_cfg_seed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO sp_cfg VALUES (0, 'default'); RETURN NULL; END $$;
            CREATE TRIGGER cfg_seed_defaults AFTER TRUNCATE ON sp_cfg FOR EACH STATEMENT EXECUTE FUNCTION sp_cfg_seed();
            INSERT INTO sp_cfg VALUES (1, 'custom');
            """,
            "sp_cfg");
        var replica = new ReplicaModel(T("sp_cfg"), ["id"], ["id", "value"]);
        replica.ApplyAll(drain.Delivered);

        await db.ExecuteAsync("TRUNCATE sp_cfg");

        var events = await drain.DrainAsync();
        events.Select(e => e.Kind).Should().Equal(
            [ChangeKind.Truncate, ChangeKind.Insert], "the table was emptied first, then the trigger inserted the default row");
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "the default row exists at the source");
    }

    [Fact]
    public async Task A_truncate_rolled_back_to_a_savepoint_and_truncates_of_tracked_tables_mixed_with_partitions_of_another_keep_replicas_equal()
    {
        var drain = await TrackAsync(
            """
            CREATE TABLE sp_plain (id int PRIMARY KEY, label text);
            CREATE TABLE sp_parts (id int, k text, label text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
            CREATE TABLE sp_parts_a PARTITION OF sp_parts FOR VALUES IN ('a');
            CREATE TABLE sp_parts_b PARTITION OF sp_parts FOR VALUES IN ('b') PARTITION BY RANGE (id);
            CREATE TABLE sp_parts_b1 PARTITION OF sp_parts_b FOR VALUES FROM (0) TO (100);
            CREATE TABLE sp_parts_b2 PARTITION OF sp_parts_b FOR VALUES FROM (100) TO (200);
            """,
            "sp_plain", "sp_parts");
        var plain = new ReplicaModel(T("sp_plain"), ["id"], ["id", "label"]);
        var parts = new ReplicaModel(T("sp_parts"), ["id", "k"], ["id", "k", "label"]);

        await db.ExecuteAsync(
            """
            INSERT INTO sp_plain VALUES (1, 'p1'), (2, 'p2');
            INSERT INTO sp_parts VALUES (1, 'a', 'x'), (2, 'b', 'y'), (150, 'b', 'z'), (3, 'a', 'w');
            """);
        await db.ExecuteAsync("BEGIN; SAVEPOINT s; TRUNCATE sp_plain; ROLLBACK TO s; INSERT INTO sp_plain VALUES (3, 'p3'); COMMIT");
        await db.ExecuteAsync("BEGIN; SAVEPOINT s; TRUNCATE sp_parts_a; ROLLBACK TO s; TRUNCATE sp_parts_b1; COMMIT");
        await db.ExecuteAsync("BEGIN; INSERT INTO sp_parts VALUES (151, 'b', 'v'); TRUNCATE sp_plain, sp_parts_b2 RESTART IDENTITY; INSERT INTO sp_plain VALUES (4, 'p4'); COMMIT");
        await db.ExecuteAsync("INSERT INTO sp_parts VALUES (5, 'b', 'q'), (152, 'b', 'r'); TRUNCATE sp_parts_b");

        var events = await drain.DrainAsync();
        plain.ApplyAll(events);
        parts.ApplyAll(events);
        await plain.ShouldEqualSourceAsync(db, "only the committed truncate and the later insert count");
        await parts.ShouldEqualSourceAsync(db, "partition a survives every partial truncate");
    }
}
