using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// The chunk reads the table with the consumer's privileges. A row-level security policy that hides
/// rows from the consumer's role must not turn into a snapshot that reports success with rows missing.
/// </summary>
public sealed class SnapshotAttackRowSecurityTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task A_snapshot_read_through_a_row_level_security_policy_does_not_complete_silently_without_the_hidden_rows()
    {
        await using var role = await LoginRole.CreateAsync(db, "snap_rls");
        var schema = await db.InstallAsync("log_rls");
        await db.ExecuteAsync(
            $"""
            CREATE TABLE snap_rls (id int PRIMARY KEY, version int NOT NULL DEFAULT 1, tenant int NOT NULL);
            INSERT INTO snap_rls (id, tenant) SELECT g, g % 2 FROM generate_series(1, 20) g;
            ALTER TABLE snap_rls ENABLE ROW LEVEL SECURITY;
            CREATE POLICY tenant_zero ON snap_rls USING (tenant = 0);
            GRANT SELECT ON snap_rls TO {role.Quoted};
            """);
        await schema.TrackTableAsync(new TableName("public", "snap_rls"));
        await db.ExecuteAsync(
            $"""
            GRANT USAGE ON SCHEMA log_rls TO {role.Quoted};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA log_rls TO {role.Quoted};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA log_rls TO {role.Quoted};
            """);

        var replica = new SnapshotReplica();
        await using var host = ConsumerHost.Create(
            role.ConnectionString("snap_rls"),
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>("snap_rls"),
            o =>
            {
                o.ConsumerName = "snap_rls";
                o.SchemaName = "log_rls";
                o.InstallOnStart = false;
                o.InitialSnapshot = true;
            },
            services: s => s.AddSingleton(replica));
        await host.StartAsync();

        var status = await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].CompletedAt is not null,
            s => string.Join("; ", s.Snapshots), TimeSpan.FromSeconds(20));
        var progress = status.Snapshots.Single();
        if (progress.Error is null)
        {
            progress.RowsRead.Should().Be(20, "a snapshot reported complete must have read every row of the table");
        }
        else
        {
            progress.Error.Should().Contain("row-level security");
        }
    }
}
