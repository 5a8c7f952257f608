using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>Snapshots whose table is dropped, whose chunk's connection is killed, and two consumers snapshotting at once.</summary>
public sealed class SnapshotAttackLifecycleTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private ConsumerHost Host(string name, string table, SnapshotReplica replica, Action<PgEventsOptions>? configure = null, string? side = null) =>
        ConsumerHost.Create(
            db.ConnectionString,
            b =>
            {
                b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>(table);
                if (side is not null)
                {
                    b.AddHandler<System.Text.Json.JsonElement, RecordingHandler<System.Text.Json.JsonElement>>(side);
                }
            },
            o =>
            {
                o.ConsumerName = name;
                o.InitialSnapshot = true;
                o.SnapshotChunkSize = 10;
                o.PollInterval = TimeSpan.FromMilliseconds(100);
                configure?.Invoke(o);
            },
            services: s => s.AddSingleton(replica));

    [Fact]
    public async Task A_table_dropped_mid_snapshot_ends_the_snapshot_with_the_reason_and_the_consumer_goes_on_delivering()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_drop (id int PRIMARY KEY, version int NOT NULL DEFAULT 1);
            INSERT INTO snap_drop (id) SELECT g FROM generate_series(1, 100) g;
            CREATE TABLE snap_drop_side (id int PRIMARY KEY, version int NOT NULL DEFAULT 1);
            """);
        var replica = new SnapshotReplica();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        replica.BeforeApply = (_, token) => release.Task.WaitAsync(token);
        await using var host = Host("snap_drop", "snap_drop", replica, o => o.InitialSnapshot = false, side: "snap_drop_side");
        await host.StartAsync();
        await host.Consumer.RequestSnapshotAsync("snap_drop");
        await Eventually.UntilAsync(
            () => db.ScalarAsync<int>("SELECT coalesce((SELECT chunks FROM log_snap_drop.snapshots), 0)").ContinueWith(t => t.Result == 2),
            "two chunks written ahead of delivery");

        await db.ExecuteAsync("DROP TABLE snap_drop");
        release.TrySetResult();
        var status = await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Single().CompletedAt is not null && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), Wait);
        status.Snapshots.Single().Error.Should().Contain("no longer exists");
        status.Snapshots.Single().RowsRead.Should().Be(20);

        await db.ExecuteAsync("INSERT INTO snap_drop_side (id) VALUES (1)");
        await host.Sink.WaitForCountAsync(1);
        (await host.Consumer.GetStatusAsync()).Should().Match<ConsumerStatus>(s => s.Blocked == null && s.Fault == null);
        (await db.ScalarAsync<int>("SELECT chunks FROM log_snap_drop.snapshots")).Should().Be(2, "an ended snapshot is not tried again");
    }

    [Fact]
    public async Task A_chunk_whose_connection_is_killed_while_it_waits_is_written_again_once_and_nothing_is_lost()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_kill (id int PRIMARY KEY, version int NOT NULL DEFAULT 1);
            INSERT INTO snap_kill (id) SELECT g FROM generate_series(1, 25) g;
            """);
        var replica = new SnapshotReplica();
        await using var host = Host("snap_kill", "snap_kill", replica, o => o.InitialSnapshot = false);
        await host.StartAsync();

        await using var early = new NpgsqlConnection(db.ConnectionString);
        await early.OpenAsync();
        await using (var begin = new NpgsqlCommand("BEGIN; UPDATE snap_kill SET version = 2 WHERE id = 3; SET CONSTRAINTS ALL IMMEDIATE", early))
        {
            await begin.ExecuteNonQueryAsync();
        }

        await host.Consumer.RequestSnapshotAsync("snap_kill");
        await Eventually.UntilAsync(() => db.ScalarAsync<long>(SnapshotReplica.ChunksWaitingSql).ContinueWith(t => t.Result >= 1), "the chunk waits");
        (await db.ScalarAsync<bool>(
            "SELECT bool_and(pg_terminate_backend(a.pid)) FROM pg_stat_activity a WHERE a.query LIKE '%snapshot_chunk(%' AND a.pid <> pg_backend_pid() AND a.datname = current_database()"))
            .Should().BeTrue();
        await db.ExecuteAsync("UPDATE snap_kill SET version = 2 WHERE id = 20");
        await using (var commit = new NpgsqlCommand("COMMIT", early))
        {
            await commit.ExecuteNonQueryAsync();
        }

        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Single().IsDelivered && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), Wait);
        (await db.ScalarAsync<long>("SELECT count(*) FROM log_snap_kill.events WHERE operation = 'SNAPSHOT'")).Should().BeLessThanOrEqualTo(25);
        (await db.ScalarAsync<long>("SELECT count(DISTINCT row_data->>'id') FROM log_snap_kill.events WHERE operation = 'SNAPSHOT'"))
            .Should().Be(await db.ScalarAsync<long>("SELECT count(*) FROM log_snap_kill.events WHERE operation = 'SNAPSHOT'"), "no row written twice");
        await replica.ShouldMatchAsync(db.DataSource, "snap_kill");
        replica.Violations.Should().BeEmpty();
    }

    [Fact]
    public async Task Two_consumers_snapshotting_one_table_at_once_under_churn_both_end_equal_to_the_source()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_two (id int PRIMARY KEY, version int NOT NULL DEFAULT 1, note text);
            INSERT INTO snap_two (id) SELECT g FROM generate_series(1, 600) g;
            """);
        var first = new SnapshotReplica();
        var second = new SnapshotReplica();
        await using var a = Host("snap_two_a", "snap_two", first, o => o.SchemaName = "log_two");
        await using var b = Host("snap_two_b", "snap_two", second, o => o.SchemaName = "log_two");
        using var stop = new CancellationTokenSource();
        var churn = Writers.RunUntilStoppedAsync(db.ConnectionString, 3, async (connection, random) =>
        {
            await using var command = new NpgsqlCommand(
                "BEGIN; UPDATE snap_two SET version = version + 1, note = md5(random()::text) WHERE id = @a; UPDATE snap_two SET version = version + 1 WHERE id = @b; COMMIT", connection);
            // Rows in key order: writers that lock two rows in opposite orders deadlock among
            // themselves, which is not what this test is about.
            var (one, other) = (random.Next(1, 601), random.Next(1, 601));
            command.Parameters.AddWithValue("a", Math.Min(one, other));
            command.Parameters.AddWithValue("b", Math.Max(one, other));
            await command.ExecuteNonQueryAsync();
        }, stop.Token);
        await a.StartAsync();
        await b.StartAsync();
        foreach (var host in new[] { a, b })
        {
            await Eventually.UntilAsync(
                () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].CompletedAt is not null,
                s => string.Join("; ", s.Snapshots), Wait);
        }

        await stop.CancelAsync();
        await churn;
        foreach (var (host, replica) in new[] { (a, first), (b, second) })
        {
            await Eventually.UntilAsync(
                () => host.Consumer.GetStatusAsync(), s => s.Snapshots[0].IsDelivered && s.LagEvents == 0,
                s => string.Join("; ", s.Snapshots), Wait);
            await replica.ShouldMatchAsync(db.DataSource, "snap_two");
            replica.Violations.Should().BeEmpty();
            replica.Count(ChangeKind.Snapshot).Should().BeLessThanOrEqualTo(600);
        }
    }
}
