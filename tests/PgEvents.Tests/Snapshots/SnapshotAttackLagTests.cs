using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// Chunk transactions hold nothing for consumers other than the one they are for, and a chunk that
/// wrote nothing holds nothing for anyone: neither may show as lag ("zero when caught up").
/// </summary>
public sealed class SnapshotAttackLagTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private ConsumerHost Host(string name, SnapshotReplica replica, bool snapshot) =>
        ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_lag"),
            o =>
            {
                o.ConsumerName = name;
                o.SchemaName = "log_lag";
                o.InitialSnapshot = snapshot;
                o.SnapshotChunkSize = 50;
                o.PollInterval = TimeSpan.FromMilliseconds(100);
            },
            services: s => s.AddSingleton(replica));

    [Fact]
    public async Task Neither_the_other_consumer_nor_the_snapshotting_one_reports_lag_time_once_everything_is_delivered()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_lag (id int PRIMARY KEY, version int NOT NULL DEFAULT 1, note text);
            INSERT INTO snap_lag (id, note) SELECT g, 'seed' FROM generate_series(1, 100) g;
            """);
        var replica = new SnapshotReplica();
        var other = new SnapshotReplica();
        await using var plain = Host("lag_plain", other, snapshot: false);
        await plain.StartAsync();
        await using var snapshotting = Host("lag_snap", replica, snapshot: true);
        await snapshotting.StartAsync();

        // 100 rows in chunks of 50: two chunks with rows, and a last one that finds none.
        var status = await Eventually.UntilAsync(
            () => snapshotting.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].IsDelivered && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), Wait);
        status.Snapshots[0].Chunks.Should().Be(3);
        await replica.ShouldMatchAsync(db.DataSource, "snap_lag");

        await Eventually.UntilAsync(
            () => plain.Consumer.GetStatusAsync(), s => s.LagEvents == 0 && s.LagTime == TimeSpan.Zero,
            s => $"the consumer without a snapshot has nothing to deliver: lag {s.LagEvents} events, {s.LagTime}", TimeSpan.FromSeconds(5));
        await Eventually.UntilAsync(
            () => snapshotting.Consumer.GetStatusAsync(), s => s.LagEvents == 0 && s.LagTime == TimeSpan.Zero,
            s => $"the snapshotting consumer delivered everything: lag {s.LagEvents} events, {s.LagTime}", TimeSpan.FromSeconds(5));
        other.Deliveries.Should().BeEmpty();
    }
}
