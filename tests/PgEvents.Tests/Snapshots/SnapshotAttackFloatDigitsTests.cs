using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// A float8 primary key, written by a session with extra_float_digits = 0 (as old drivers and some
/// tools set it): the event's JSON holds the key rounded to 15 digits, not the key. The chunk must
/// still recognise the rows that later commits changed.
/// </summary>
public sealed class SnapshotAttackFloatDigitsTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private async Task<NpgsqlConnection> OpenAsync()
    {
        var connection = new NpgsqlConnection(db.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    private static async Task RunAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task A_row_keyed_by_float8_and_changed_by_a_writer_with_extra_float_digits_0_after_the_chunk_position_is_left_out_of_the_chunk()
    {
        // Every new session (the snapshot worker's included) runs in UTC; the writer below does not.
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_float (at float8 PRIMARY KEY, uid int NOT NULL UNIQUE, version int NOT NULL DEFAULT 1, note text);
            INSERT INTO snap_float (at, uid, note) SELECT g * 0.1::float8, g, 'seed' FROM generate_series(1, 10) g;
            """);
        var replica = new SnapshotReplica { KeyColumns = ["uid"] };
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_float"),
            o =>
            {
                o.ConsumerName = "snap_float";
                o.SnapshotChunkSize = 100;
            },
            services: s => s.AddSingleton(replica));
        await host.StartAsync();

        // A transaction in its commit phase holds the chunk in its wait, after the chunk took its position.
        await using var early = await OpenAsync();
        await RunAsync(early, "BEGIN; UPDATE snap_float SET version = 2, note = 'early' WHERE uid = 3; SET CONSTRAINTS ALL IMMEDIATE");
        await host.Consumer.RequestSnapshotAsync("snap_float");
        await Eventually.UntilAsync(
            () => db.ScalarAsync<long>(SnapshotReplica.ChunksWaitingSql).ContinueWith(t => t.Result >= 1),
            "the chunk transaction waits for the transaction in its commit phase");

        // Positions after the chunk's, committed before it reads, by a session that prints 15 digits (0.6 is 0.6000000000000001).
        await using (var late = await OpenAsync())
        {
            await RunAsync(late, "SET extra_float_digits = 0");
            await RunAsync(late, "UPDATE snap_float SET version = 2, note = 'late' WHERE uid = 6");
            await RunAsync(late, "UPDATE snap_float SET version = 3, note = 'later' WHERE uid = 6");
        }

        await RunAsync(early, "COMMIT");
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].IsDelivered && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), Wait);

        (await db.ScalarAsync<long>("SELECT count(*) FROM log_snap_float.events WHERE operation = 'SNAPSHOT' AND (row_data->>'uid')::int = 6"))
            .Should().Be(0, "row 6 was changed by commits positioned after the chunk, so it arrives through their events");
        replica.Violations.Should().BeEmpty();
        replica.Deliveries.Where(d => d.Key == "6").Select(d => d.Kind).Should().Equal(ChangeKind.Update, ChangeKind.Update);
    }
}
