using Npgsql;
using PgEvents.Testing;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

/// <summary>A server of its own: restarting the shared one would break every other test class.</summary>
public sealed class RestartableServerFixture : IAsyncLifetime
{
    public PostgresServer? Server { get; private set; }

    public async Task InitializeAsync()
    {
        var shared = await TestServer.GetAsync();
        if (shared.Kind == PostgresServerKind.LocalCluster)
        {
            // A crash test needs real commit durability: with synchronous_commit off, PostgreSQL itself
            // may lose commits it already acknowledged when it crashes.
            Server = await PostgresServer.StartAsync(new PostgresServerOptions { Durable = true });
        }
    }

    public async Task DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}

public sealed class ServerRestartTests(RestartableServerFixture fixture) : IClassFixture<RestartableServerFixture>
{
    [Fact]
    public async Task Committed_events_and_consumer_progress_survive_a_server_crash_under_load_and_delivery_resumes_alone()
    {
        if (fixture.Server is not { CanRestart: true } server)
        {
            // Only a throwaway local cluster can be crashed and restarted by the test.
            return;
        }

        var connectionString = await server.CreateDatabaseAsync("restart");
        await using (var setup = new NpgsqlConnection(connectionString))
        {
            await setup.OpenAsync();
            await using var create = new NpgsqlCommand("CREATE TABLE restart_items (id bigint PRIMARY KEY, label text NOT NULL)", setup);
            await create.ExecuteNonQueryAsync();
        }

        await using var host = await ConsumerHost.Create(connectionString,
            b => b.AddHandler<Item, RecordingHandler<Item>>("restart_items"),
            o => { o.ConsumerName = "survivor"; o.ReconnectDelay = TimeSpan.FromMilliseconds(100); o.BatchSize = 50; }).StartAsync();
        var writer = new SequentialWriter(connectionString, "restart_items");
        var writing = writer.WriteAsync(1, 1000, retry: true);

        await host.Sink.WaitForCountAsync(200);
        await server.StopAsync(immediate: true);
        await server.StartAgainAsync();

        await writing;
        await ConsumerInstancesTests.WaitForIdAsync(host.Sink, 1000);

        writer.Committed.Should().Equal(Enumerable.Range(1, 1000).Select(i => (long)i));
        FaultHelpers.ShouldBeCompleteAndOrdered(FaultHelpers.Ids(host.Sink), writer.Committed);
        var status = await host.Consumer.GetStatusAsync();
        status.IsActive.Should().BeTrue();
        status.LagEvents.Should().Be(0);
    }
}
