using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// A timestamptz primary key, written by a session whose TimeZone differs from the snapshot worker's:
/// the chunk must still recognise the rows that later commits changed, whatever text form their events hold.
/// </summary>
public sealed class SnapshotAttackTimeZoneTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_row_keyed_by_timestamptz_and_changed_by_a_writer_in_another_time_zone_after_the_chunk_position_is_left_out_of_the_chunk()
    {
        // Every new session (the snapshot worker's included) runs in UTC; the writer below does not.
        await db.ExecuteAsync(
            """
            DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone = %L', current_database(), 'UTC'); END $$;
            CREATE TABLE snap_tz (at timestamptz PRIMARY KEY, uid int NOT NULL UNIQUE, version int NOT NULL DEFAULT 1, note text);
            INSERT INTO snap_tz (at, uid, note) SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', g, 'seed' FROM generate_series(1, 10) g;
            """);
        var replica = new SnapshotReplica { KeyColumns = ["uid"] };
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_tz"),
            o =>
            {
                o.ConsumerName = "snap_tz";
                o.SnapshotChunkSize = 100;
            },
            services: s => s.AddSingleton(replica));
        await host.StartAsync();

        // A transaction in its commit phase holds the chunk in its wait, after the chunk took its position.
        await using var early = await db.DataSource.OpenConnectionAsync();
        await OrderingTable.ExecuteAsync(early, "BEGIN; UPDATE snap_tz SET version = 2, note = 'early' WHERE uid = 3; SET CONSTRAINTS ALL IMMEDIATE");
        await host.Consumer.RequestSnapshotAsync("snap_tz");
        await Eventually.UntilAsync(
            () => db.ScalarAsync<long>(SnapshotReplica.ChunksWaitingSql).ContinueWith(t => t.Result >= 1),
            "the chunk transaction waits for the transaction in its commit phase");

        // Positions after the chunk's, committed before it reads, by a session in India.
        await using (var late = await db.DataSource.OpenConnectionAsync())
        {
            await OrderingTable.ExecuteAsync(late, "SET TimeZone = 'Asia/Kolkata'");
            await OrderingTable.ExecuteAsync(late, "UPDATE snap_tz SET version = 2, note = 'late' WHERE uid = 6");
            await OrderingTable.ExecuteAsync(late, "UPDATE snap_tz SET version = 3, note = 'later' WHERE uid = 6");
        }

        await OrderingTable.ExecuteAsync(early, "COMMIT");
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].IsDelivered && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), Wait);

        (await db.ScalarAsync<long>("SELECT count(*) FROM log_snap_tz.events WHERE operation = 'SNAPSHOT' AND (row_data->>'uid')::int = 6"))
            .Should().Be(0, "row 6 was changed by commits positioned after the chunk, so it arrives through their events");
        replica.Violations.Should().BeEmpty();
        replica.Deliveries.Where(d => d.Key == "6").Select(d => d.Kind).Should().Equal(ChangeKind.Update, ChangeKind.Update);
    }
}
