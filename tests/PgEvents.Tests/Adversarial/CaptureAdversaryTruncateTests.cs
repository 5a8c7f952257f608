using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// TRUNCATE capture (schema v6): the BEFORE trigger of the tracked table marks the statement in one
/// transaction-wide setting, which the AFTER trigger must still find. A TRUNCATE that names
/// several tracked tables fires every BEFORE trigger before any AFTER trigger.
/// </summary>
public sealed class CaptureAdversaryTruncateTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("truncate", () => db.InstallAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<LogDrain> TrackAsync(string ddl, params string[] tables) => LogDrain.TrackAsync(db, _schema, ddl, tables);

    [Fact]
    public async Task Truncating_two_tracked_tables_in_one_statement_delivers_a_truncate_for_each()
    {
        var drain = await TrackAsync(
            "CREATE TABLE tt_first (id int PRIMARY KEY, label text); CREATE TABLE tt_second (id int PRIMARY KEY, label text)",
            "tt_first", "tt_second");
        await db.ExecuteAsync("INSERT INTO tt_first VALUES (1, 'a'); INSERT INTO tt_second VALUES (1, 'b')");
        var first = new ReplicaModel(new TableName("public", "tt_first"), ["id"], ["id", "label"]);
        var second = new ReplicaModel(new TableName("public", "tt_second"), ["id"], ["id", "label"]);
        var setup = await drain.DrainAsync();
        first.ApplyAll(setup);
        second.ApplyAll(setup);

        await db.ExecuteAsync("TRUNCATE tt_first, tt_second");
        await db.ExecuteAsync("INSERT INTO tt_second VALUES (2, 'after')");

        var events = await drain.DrainAsync();
        events.Where(e => e.Kind == ChangeKind.Truncate).Select(e => e.Table)
            .Should().BeEquivalentTo(["tt_first", "tt_second"], "both tables were emptied");
        first.ApplyAll(events);
        first.Rows.Should().BeEmpty("tt_first is empty at the source");
    }

    [Fact]
    public async Task Truncate_cascade_to_a_tracked_referencing_table_delivers_the_truncate_of_the_named_table()
    {
        var drain = await TrackAsync(
            """
            CREATE TABLE tc_orders (id int PRIMARY KEY, label text);
            CREATE TABLE tc_lines (id int PRIMARY KEY, order_id int REFERENCES tc_orders, label text);
            """,
            "tc_orders", "tc_lines");
        await db.ExecuteAsync("INSERT INTO tc_orders VALUES (1, 'order'); INSERT INTO tc_lines VALUES (1, 1, 'line')");
        var orders = new ReplicaModel(new TableName("public", "tc_orders"), ["id"], ["id", "label"]);
        orders.ApplyAll(await drain.DrainAsync());

        await db.ExecuteAsync("TRUNCATE tc_orders CASCADE");

        var events = await drain.DrainAsync();
        events.Where(e => e.Kind == ChangeKind.Truncate).Select(e => e.Table)
            .Should().BeEquivalentTo(["tc_orders", "tc_lines"], "CASCADE empties both tracked tables");
        orders.ApplyAll(events);
        orders.Rows.Should().BeEmpty("tc_orders is empty at the source");
    }

    [Fact]
    public async Task Truncating_a_partition_of_a_table_with_a_column_named_r_delivers_deletes_of_whole_rows()
    {
        var drain = await TrackAsync(
            """
            CREATE TABLE tr_stock (id int, r text, qty int, PRIMARY KEY (id, r)) PARTITION BY LIST (r);
            CREATE TABLE tr_stock_a PARTITION OF tr_stock FOR VALUES IN ('a');
            CREATE TABLE tr_stock_b PARTITION OF tr_stock FOR VALUES IN ('b');
            """,
            "tr_stock");
        await db.ExecuteAsync("INSERT INTO tr_stock VALUES (1, 'a', 10), (2, 'b', 20), (3, 'a', 30)");

        await db.ExecuteAsync("TRUNCATE tr_stock_a");

        var events = await drain.DrainAsync();
        events.Where(e => e.Kind == ChangeKind.Delete).Select(e => e.RowJson)
            .Should().HaveCount(2).And.AllSatisfy(json => json.Should().StartWith("{", "a delete carries the removed row, not the value of its column r"));
        var replica = new ReplicaModel(new TableName("public", "tr_stock"), ["id", "r"], ["id", "r", "qty"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "only partition b's row is left");
    }
}
