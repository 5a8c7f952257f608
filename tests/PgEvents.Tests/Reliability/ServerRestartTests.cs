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
        await FaultHelpers.WaitForIdAsync(host.Sink, 1000);

        writer.Committed.Should().Equal(Enumerable.Range(1, 1000).Select(i => (long)i));
        FaultHelpers.ShouldBeCompleteAndOrdered(FaultHelpers.Ids(host.Sink), writer.Committed);
        var status = await host.Consumer.GetStatusAsync();
        status.IsActive.Should().BeTrue();
        status.LagEvents.Should().Be(0);
    }

    [Fact]
    public async Task The_positions_a_crash_burns_are_passed_over_at_once_while_an_unrelated_transaction_stays_open()
    {
        if (fixture.Server is not { CanRestart: true } server)
        {
            return;
        }

        var connectionString = await server.CreateDatabaseAsync("jump");
        await using (var setup = new NpgsqlConnection(connectionString))
        {
            await setup.OpenAsync();
            await using var create = new NpgsqlCommand(
                "CREATE TABLE jump_items (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE bystanders (id int)", setup);
            await create.ExecuteNonQueryAsync();
        }

        await using var host = await ConsumerHost.Create(connectionString,
            b => b.AddHandler<Item, RecordingHandler<Item>>("jump_items"),
            o => { o.ConsumerName = "jumper"; o.ReconnectDelay = TimeSpan.FromMilliseconds(100); o.PollInterval = TimeSpan.FromMinutes(5); }).StartAsync();
        await using (var writer = new NpgsqlConnection(connectionString))
        {
            await writer.OpenAsync();
            await using var insert = new NpgsqlCommand("INSERT INTO jump_items VALUES (1, 'before the crash')", writer);
            await insert.ExecuteNonQueryAsync();
        }

        await host.Sink.WaitForCountAsync(1);
        await server.StopAsync(immediate: true);
        await server.StartAgainAsync();

        // The writer's pooled connection died with the server.
        await using (var stale = new NpgsqlConnection(connectionString))
        {
            NpgsqlConnection.ClearPool(stale);
        }

        // Recovery restarts the position sequence past the values it had logged ahead.
        await using var bystander = new NpgsqlConnection(connectionString);
        await bystander.OpenAsync();
        await using (var open = new NpgsqlCommand("BEGIN; INSERT INTO bystanders VALUES (1)", bystander))
        {
            await open.ExecuteNonQueryAsync();
        }

        await using (var writer = new NpgsqlConnection(connectionString))
        {
            await writer.OpenAsync();
            await using var insert = new NpgsqlCommand("INSERT INTO jump_items VALUES (2, 'after the crash')", writer);
            await insert.ExecuteNonQueryAsync();
        }

        await FaultHelpers.WaitForIdAsync(host.Sink, 2);
        var positionOf = host.Sink.Deliveries.ToLookup(d => ((Item)d.Row!).Id, d => d.Position);
        positionOf[2].First().Should().BeGreaterThan(positionOf[1].First() + 1, "the crash burnt the positions the sequence had logged ahead");

        // The consumer's cursor commits asynchronously, so the first row may come again: at least once.
        FaultHelpers.ShouldBeCompleteAndOrdered(FaultHelpers.Ids(host.Sink), [1L, 2L]);
        await using (var rollback = new NpgsqlCommand("ROLLBACK", bystander))
        {
            await rollback.ExecuteNonQueryAsync();
        }
    }
}
