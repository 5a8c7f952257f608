using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// The window the position logic must get right, forced step by step: a writer that took its position
/// before the chunk's and commits after the chunk started, and writers that take positions after the
/// chunk's and commit before it reads.
/// </summary>
public sealed class SnapshotInterleavingTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_chunk_waits_for_earlier_positions_and_leaves_out_rows_that_later_positions_changed_before_it_read()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_window (id int PRIMARY KEY, version int NOT NULL DEFAULT 1, note text);
            INSERT INTO snap_window (id, note) SELECT g, 'seed' FROM generate_series(1, 10) g;
            """);
        var replica = new SnapshotReplica();
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_window"),
            o =>
            {
                o.ConsumerName = "snap_window";
                o.SnapshotChunkSize = 100;
            },
            services: s => s.AddSingleton(replica));
        await host.StartAsync();

        // Row 3 changes in a transaction that takes its position now and commits later.
        await using var early = await db.DataSource.OpenConnectionAsync();
        await OrderingTable.ExecuteAsync(early, "BEGIN; UPDATE snap_window SET version = 2, note = 'early' WHERE id = 3; SET CONSTRAINTS ALL IMMEDIATE");
        var earlyPosition = await db.ScalarAsync<long>("SELECT last_value FROM log_snap_window.position_seq");

        await host.Consumer.RequestSnapshotAsync("snap_window");
        // The chunk's statement, not the consumer's doorbell (which waits on the same lock while it
        // goes to sleep), must be the one waiting.
        await Eventually.UntilAsync(
            () => db.ScalarAsync<long>(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%snapshot_chunk%'")
                .ContinueWith(t => t.Result == 1),
            "the chunk transaction waits for the transaction in its commit phase");

        // These take positions after the chunk's and commit while it waits: the chunk must not show them.
        await using (var late = await db.DataSource.OpenConnectionAsync())
        {
            await OrderingTable.ExecuteAsync(late, "UPDATE snap_window SET version = 2, note = 'late' WHERE id = 6");
            await OrderingTable.ExecuteAsync(late, "UPDATE snap_window SET version = 3, note = 'later' WHERE id = 6");
            await OrderingTable.ExecuteAsync(late, "DELETE FROM snap_window WHERE id = 8");
        }

        await OrderingTable.ExecuteAsync(early, "COMMIT");
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].IsDelivered && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), Wait);

        var chunkPosition = await db.ScalarAsync<long>("SELECT last_position FROM log_snap_window.snapshots");
        chunkPosition.Should().BeGreaterThan(earlyPosition);
        await using (var command = db.DataSource.CreateCommand(
            "SELECT string_agg((row_data->>'id') || ':' || (row_data->>'version'), ',' ORDER BY (row_data->>'id')::int) FROM log_snap_window.events WHERE operation = 'SNAPSHOT'"))
        {
            (await command.ExecuteScalarAsync()).Should().Be(
                "1:1,2:1,3:2,4:1,5:1,7:1,9:1,10:1",
                "the chunk shows the early commit, and leaves rows 6 and 8 to the later commits' events");
        }

        replica.Violations.Should().BeEmpty();
        await replica.ShouldMatchAsync(db.DataSource, "snap_window");
        replica.Deliveries.Where(d => d.Key == "6").Select(d => d.Kind).Should().Equal(ChangeKind.Update, ChangeKind.Update);
    }
}
