using PgEvents.Tests.Infrastructure;
using static PgEvents.Tests.Adversarial.Adversary;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// track_table accepts partitioned tables, but the capture triggers that carry inserts and deletes
/// are statement-level with transition tables: PostgreSQL fires those only for the statement's own
/// target and operation, never clones them to partitions, and turns a row that changes partition
/// into a delete plus an insert inside the partitions. Each committed change below must be delivered.
/// </summary>
public sealed class PartitionedTableCaptureTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("parted", async () =>
    {
        var schema = await db.InstallAsync();
        await db.ExecuteAsync(
            """
            CREATE TABLE accounts (id int, region text, value text NOT NULL, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu');
            CREATE TABLE accounts_us PARTITION OF accounts FOR VALUES IN ('us');
            """);
        await schema.TrackTableAsync(new TableName("public", "accounts"));
        return schema;
    });

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<LogDrain> FreshDrainAsync() => LogDrain.CaughtUpAsync(db.DataSource, _schema);

    [Fact]
    public async Task An_update_that_moves_a_row_to_another_partition_of_a_tracked_table_is_delivered()
    {
        var drain = await FreshDrainAsync();
        await db.ExecuteAsync("INSERT INTO accounts VALUES (1, 'eu', 'created in eu')");
        await db.ExecuteAsync("UPDATE accounts SET region = 'us', value = 'moved to us' WHERE id = 1");

        var events = await drain.DrainAsync();

        // A move between partitions is a delete in the old partition and an insert in the new one.
        Labels(events).Should().Equal("Insert:created in eu", "Delete:created in eu", "Insert:moved to us");
        events.Skip(1).Select(e => e.Position).Distinct().Should().ContainSingle("the move is one transaction");
    }

    [Fact]
    public async Task Rows_inserted_and_deleted_directly_in_a_partition_of_a_tracked_table_are_delivered()
    {
        var drain = await FreshDrainAsync();
        await db.ExecuteAsync("INSERT INTO accounts_eu VALUES (2, 'eu', 'inserted into the partition')");
        await db.ExecuteAsync("UPDATE accounts_eu SET value = 'updated in the partition' WHERE id = 2");
        await db.ExecuteAsync("DELETE FROM accounts_eu WHERE id = 2");

        var events = await drain.DrainAsync();

        Labels(events).Should().Equal(
            "Insert:inserted into the partition", "Update:updated in the partition", "Delete:updated in the partition");
        events.Select(e => e.Table).Should().AllBe("accounts", "the tracked table is the partitioned one");
    }

    [Fact]
    public async Task Truncating_a_partition_of_a_tracked_table_is_delivered_as_deletes_of_its_rows()
    {
        await db.ExecuteAsync("INSERT INTO accounts VALUES (3, 'us', 'to be truncated'), (4, 'eu', 'stays')");
        var drain = await FreshDrainAsync();
        await db.ExecuteAsync("TRUNCATE accounts_us");

        // A Truncate of the tracked table would empty the other partitions downstream too.
        var labels = Labels(await drain.DrainAsync()).ToList();
        labels.Should().Contain("Delete:to be truncated").And.NotContain("Delete:stays");
        labels.Should().OnlyContain(l => l.StartsWith("Delete:", StringComparison.Ordinal), "other tests' rows in that partition go too, one delete each");
    }
}
