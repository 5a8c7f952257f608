using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// Lanes order the changes of one row by its key as the event text shows it. A snapshot row and a
/// later update of the same timestamptz-keyed row, written by a session in another TimeZone, show the
/// key in two texts: they must still go to one lane, in order.
/// </summary>
public sealed class SnapshotAttackLanesTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task In_lanes_an_update_after_the_chunk_never_overtakes_the_snapshot_image_of_its_timestamptz_keyed_row()
    {
        await db.ExecuteAsync(
            """
            DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone = %L', current_database(), 'UTC'); END $$;
            CREATE TABLE snap_lanes (at timestamptz PRIMARY KEY, uid int NOT NULL UNIQUE, version int NOT NULL DEFAULT 1);
            INSERT INTO snap_lanes (at, uid) SELECT timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour', g FROM generate_series(1, 8) g;
            """);
        var replica = new SnapshotReplica { KeyColumns = ["uid"] };
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        replica.BeforeApply = async (_, token) =>
        {
            entered.TrySetResult();
            await release.Task.WaitAsync(token);
        };
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_lanes"),
            o =>
            {
                o.ConsumerName = "snap_lanes";
                o.InitialSnapshot = true;
                o.DeliveryLanes = 8;
            },
            services: s => s.AddSingleton(replica));
        await host.StartAsync();
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(20));

        // Every row changes after the chunk, in a session in India, while the snapshot images are held.
        await using (var late = new NpgsqlConnection(db.ConnectionString))
        {
            await late.OpenAsync();
            await using var command = new NpgsqlCommand("SET TimeZone = 'Asia/Kolkata'; UPDATE snap_lanes SET version = 2", late);
            await command.ExecuteNonQueryAsync();
        }

        // No update may be applied while the snapshot image of its row is held: give a wrong lane time to show.
        try
        {
            await Eventually.UntilAsync(() => replica.Count(ChangeKind.Update) > 0, "an update overtaking its snapshot image", TimeSpan.FromSeconds(2));
        }
        catch (TimeoutException)
        {
        }

        release.TrySetResult();
        await Eventually.UntilAsync(() => replica.Count(ChangeKind.Update) == 8 && replica.Count(ChangeKind.Snapshot) == 8, "all changes delivered");
        replica.Violations.Should().BeEmpty();
    }
}
