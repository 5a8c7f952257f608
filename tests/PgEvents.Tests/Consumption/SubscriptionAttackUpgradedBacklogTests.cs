using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// A consumer from before subscriptions (schema v8) keeps the old rule for the backlog it has not
/// read: an unmapped table's change in it blocks by default; what is written after the upgrade
/// to a table it does not map is not its business.
/// </summary>
public sealed class SubscriptionAttackUpgradedBacklogTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private const string Log = "log_sub_attack_v8";

    public sealed record UpgradedRow(long Id, string Label);

    [Fact]
    public async Task A_consumer_upgraded_from_v8_blocks_on_its_unread_backlog_of_an_unmapped_table()
    {
        var schema = await db.InstallAsOfVersionAsync(8, Log);
        await db.ExecuteAsync("CREATE TABLE v8_mapped (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE v8_unmapped (id bigint PRIMARY KEY, label text NOT NULL)");
        await schema.TrackTableAsync(new TableName("public", "v8_mapped"));
        await schema.TrackTableAsync(new TableName("public", "v8_unmapped"));
        await db.ExecuteAsync($"INSERT INTO {Log}.consumers (name) VALUES ('v8_consumer')");
        await db.ExecuteAsync("INSERT INTO v8_mapped VALUES (1, 'before')");
        await db.ExecuteAsync("INSERT INTO v8_unmapped VALUES (1, 'backlog')");
        await db.ExecuteAsync("INSERT INTO v8_mapped VALUES (2, 'after the backlog')");

        await using var host = await ConsumerHost.Create(db.ConnectionString,
            m => m.AddHandler<UpgradedRow, RecordingHandler<UpgradedRow>>("v8_mapped"),
            o => { o.ConsumerName = "v8_consumer"; o.SchemaName = Log; }).StartAsync();
        await host.Sink.WaitForCountAsync(1);
        var status = await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Blocked is not null, s => $"cursor {s.CursorPosition}, head {s.HeadPosition}, lag {s.LagEvents}");

        status.Blocked!.Table.Should().Be(new TableName("public", "v8_unmapped"));
        host.Sink.Deliveries.Should().ContainSingle("nothing passes the blocked backlog");
    }
}
