using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// PostgreSQL fires AFTER ROW triggers only at the end of the statement, row by row. The capture of
/// row 2 therefore runs after every trigger of row 1; if one of those changed row 2, the capture
/// logs row 2's older image after the newer one, and an upsert replica ends with the older image.
/// </summary>
public sealed class CaptureAdversaryOrderTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("order", () => db.InstallAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<LogDrain> TrackAsync(string ddl, string table) => LogDrain.TrackAsync(db, _schema, ddl, table);

    [Fact]
    public async Task A_self_referencing_on_update_cascade_in_a_multi_row_update_leaves_the_replica_equal()
    {
        var drain = await TrackAsync(
            "CREATE TABLE ord_tree (id int PRIMARY KEY, parent int REFERENCES ord_tree (id) ON UPDATE CASCADE ON DELETE SET NULL)",
            "ord_tree");
        await db.ExecuteAsync("INSERT INTO ord_tree VALUES (1, NULL), (2, 1), (3, 2)");
        await db.ExecuteAsync("UPDATE ord_tree SET id = id + 100");
        await db.ExecuteAsync("DELETE FROM ord_tree WHERE id = 101");

        var replica = new ReplicaModel(new TableName("public", "ord_tree"), ["id"], ["id", "parent"]);
        replica.ApplyAll(await drain.DrainAsync());
        await replica.ShouldEqualSourceAsync(db, "cascaded changes of the same rows are logged after the statement's own");
    }
}
