using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>A table renamed while a chunk waits for the commit phase: the snapshot follows the table by identity.</summary>
public sealed class SnapshotAttackRenameTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_rename_committed_while_a_chunk_waits_neither_ends_the_snapshot_nor_loses_rows()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE snap_rename (id int PRIMARY KEY, version int NOT NULL DEFAULT 1, note text);
            CREATE TABLE snap_rename_side (id int PRIMARY KEY, version int NOT NULL DEFAULT 1);
            INSERT INTO snap_rename_side (id) VALUES (1);
            INSERT INTO snap_rename (id, note) SELECT g, 'seed' FROM generate_series(1, 10) g;
            """);
        var replica = new SnapshotReplica();
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b =>
            {
                b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_rename");
                b.AddHandler<System.Text.Json.JsonElement, RecordingHandler<System.Text.Json.JsonElement>>("snap_rename_side");
            },
            o =>
            {
                o.ConsumerName = "snap_rename";
                o.SnapshotChunkSize = 100;
                o.UnmappedTablePolicy = UnmappedTablePolicy.Skip;
            },
            services: s => s.AddSingleton(replica));
        await host.StartAsync();

        await using var early = await db.DataSource.OpenConnectionAsync();
        // A writer of another tracked table of the same log, in its commit phase: it holds no lock on snap_rename.
        await OrderingTable.ExecuteAsync(early, "BEGIN; UPDATE snap_rename_side SET version = 2 WHERE id = 1; SET CONSTRAINTS ALL IMMEDIATE");
        await host.Consumer.RequestSnapshotAsync("snap_rename");
        await Eventually.UntilAsync(
            () => db.ScalarAsync<long>(SnapshotReplica.ChunksWaitingSql).ContinueWith(t => t.Result >= 1),
            "the chunk transaction waits for the transaction in its commit phase");

        // A plain rename: the chunk holds no lock on the table while it waits, so nothing stops it.
        await db.ExecuteAsync("ALTER TABLE snap_rename RENAME TO snap_renamed");
        await OrderingTable.ExecuteAsync(early, "COMMIT");

        var status = await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].CompletedAt is not null,
            s => string.Join("; ", s.Snapshots), Wait);
        var progress = status.Snapshots.Single();
        progress.Error.Should().BeNull("the table still exists, only under another name");
        progress.RowsRead.Should().Be(10);
        progress.Table.Should().Be(new TableName("public", "snap_renamed"));
        (await db.ScalarAsync<long>("SELECT count(*) FROM log_snap_rename.events WHERE operation = 'SNAPSHOT'")).Should().Be(10);
    }
}
