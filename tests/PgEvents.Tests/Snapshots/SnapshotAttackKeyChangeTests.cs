using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// The primary key replaced by another one between two chunks: the key saved after the last chunk
/// belongs to the old key and must not be read as a position in the new one.
/// </summary>
public sealed class SnapshotAttackKeyChangeTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_primary_key_replaced_between_chunks_does_not_make_the_snapshot_skip_rows()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_rekey (id int PRIMARY KEY, neg int NOT NULL UNIQUE, version int NOT NULL DEFAULT 1, note text);
            INSERT INTO snap_rekey (id, neg, note) SELECT g, -g, 'seed' FROM generate_series(1, 100) g;
            """);
        var replica = new SnapshotReplica();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        replica.BeforeApply = (_, token) => release.Task.WaitAsync(token);
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_rekey"),
            o =>
            {
                o.ConsumerName = "snap_rekey";
                o.InitialSnapshot = true;
                o.SnapshotChunkSize = 10;
                o.PollInterval = TimeSpan.FromMilliseconds(100);
            },
            services: s => s.AddSingleton(replica));
        await host.StartAsync();

        // Delivery is held at the first snapshot row, so the worker stops two chunks ahead (last key 20).
        await Eventually.UntilAsync(
            () => db.ScalarAsync<int>("SELECT coalesce((SELECT chunks FROM log_snap_rekey.snapshots), 0)").ContinueWith(t => t.Result == 2),
            "two chunks written ahead of delivery");
        await db.ExecuteAsync("ALTER TABLE snap_rekey DROP CONSTRAINT snap_rekey_pkey, ADD PRIMARY KEY (neg)");
        release.TrySetResult();

        var status = await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].CompletedAt is not null && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), Wait);
        status.Snapshots.Single().Error.Should().BeNull();
        await replica.ShouldMatchAsync(db.DataSource, "snap_rekey");
        replica.Violations.Should().BeEmpty();
    }
}
