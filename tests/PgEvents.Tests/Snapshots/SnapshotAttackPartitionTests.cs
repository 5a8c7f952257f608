using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// A partitioned table (key includes the partition key, a DEFAULT partition) whose rows move between
/// partitions while the snapshot reads it, under a database whose default isolation is SERIALIZABLE.
/// </summary>
public sealed class SnapshotAttackPartitionTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task Rows_moving_between_partitions_during_the_snapshot_never_go_back_in_time_and_the_replica_ends_equal()
    {
        await db.ExecuteAsync(
            """
            DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L', current_database(), 'serializable'); END $$;
            CREATE TABLE snap_part (region int NOT NULL, id int NOT NULL, uid int NOT NULL, version int NOT NULL DEFAULT 1,
                                    PRIMARY KEY (region, id)) PARTITION BY LIST (region);
            CREATE TABLE snap_part_1 PARTITION OF snap_part FOR VALUES IN (1);
            CREATE TABLE snap_part_2 PARTITION OF snap_part FOR VALUES IN (2);
            CREATE TABLE snap_part_d PARTITION OF snap_part DEFAULT;
            INSERT INTO snap_part (region, id, uid) SELECT 1 + g % 4, g, g FROM generate_series(1, 800) g;
            """);
        // Keys are reused here (a row moves back to a partition it left), which SnapshotReplica reports
        // as a row coming back after its delete: its violations are replaced by the uid's versions below.
        var replica = new SnapshotReplica { KeyColumns = ["region", "id"] };
        var versions = new UidVersions();
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, UidVersionsHandler>("snap_part"),
            o =>
            {
                o.ConsumerName = "snap_part";
                o.InitialSnapshot = true;
                o.SnapshotChunkSize = 20;
            },
            services: s => s.AddSingleton(replica).AddSingleton(versions));

        using var stop = new CancellationTokenSource();
        var moved = 0;
        var churn = Writers.RunUntilStoppedAsync(db.ConnectionString, 3, async (connection, random) =>
        {
            // Moves a row to another partition (its key changes) and raises its version.
            await using var command = new NpgsqlCommand(
                "UPDATE snap_part SET region = 1 + (region + @step) % 5, version = version + 1 WHERE uid = @uid", connection);
            command.Parameters.AddWithValue("step", random.Next(1, 4));
            command.Parameters.AddWithValue("uid", random.Next(1, 801));
            try
            {
                await command.ExecuteNonQueryAsync();
                Interlocked.Increment(ref moved);
            }
            catch (PostgresException e) when (e.SqlState == "40001")
            {
                // Serializable writers retry their own conflicts.
            }
        }, stop.Token);
        await host.StartAsync();
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].CompletedAt is not null,
            s => string.Join("; ", s.Snapshots), TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await churn;
        moved.Should().BeGreaterThan(50);

        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots[0].IsDelivered && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), TimeSpan.FromSeconds(20));
        await replica.ShouldMatchAsync(db.DataSource, "snap_part");
        versions.Violations.Should().BeEmpty();
    }

    /// <summary>The highest version each uid was delivered with: an image below it is a row going back in time.</summary>
    public sealed class UidVersions
    {
        private readonly Dictionary<int, int> _highest = [];
        private readonly List<string> _violations = [];

        public IReadOnlyList<string> Violations
        {
            get
            {
                lock (_highest)
                {
                    return _violations.ToArray();
                }
            }
        }

        public void Observe(ChangeKind kind, System.Text.Json.JsonElement row, long position)
        {
            var uid = row.GetProperty("uid").GetInt32();
            var version = row.GetProperty("version").GetInt32();
            lock (_highest)
            {
                if (_highest.TryGetValue(uid, out var highest) && version < highest)
                {
                    _violations.Add($"{kind} of uid {uid} at {position} went back from version {highest} to {version}");
                }

                _highest[uid] = Math.Max(highest, version);
            }
        }
    }

    public sealed class UidVersionsHandler(SnapshotReplica replica, UidVersions versions) : IRowHandler<System.Text.Json.JsonElement>
    {
        public Task HandleAsync(RowChange<System.Text.Json.JsonElement> change, CancellationToken cancellationToken)
        {
            if (change.RowJson is not null && change.Row is { } row)
            {
                versions.Observe(change.Kind, row, change.Position);
            }

            replica.Apply(change.Kind, change.RowJson, change.OldRowJson, change.Position);
            return Task.CompletedTask;
        }
    }
}
