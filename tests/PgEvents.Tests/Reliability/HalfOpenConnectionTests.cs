using System.Diagnostics;
using Npgsql;
using PgEvents.Testing;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

public sealed class HalfOpenConnectionTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task A_frozen_LISTEN_connection_is_detected_by_the_keepalive_probe_and_replaced()
    {
        var server = await TestServer.GetAsync();
        if (server.Kind != PostgresServerKind.LocalCluster)
        {
            // Freezing a backend needs a signal to a local process; remote servers cannot be frozen here.
            return;
        }

        await db.ExecuteAsync("CREATE TABLE frozen_items (id bigint PRIMARY KEY, label text NOT NULL)");
        const string app = "half-open-consumer";

        // With an hour-long poll, only notifications deliver: a dead listener would stall for an hour.
        await using var host = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, app),
            b => b.AddHandler<Item, RecordingHandler<Item>>("frozen_items"),
            o =>
            {
                o.ConsumerName = "half_open";
                o.PollInterval = TimeSpan.FromHours(1);
                o.KeepAliveInterval = TimeSpan.FromSeconds(1);
                o.ReconnectDelay = TimeSpan.FromMilliseconds(50);
            }).StartAsync();
        await db.ExecuteAsync("INSERT INTO frozen_items VALUES (1, 'before')");
        await host.Sink.WaitForCountAsync(1);

        var listenerPid = await db.ScalarAsync<int>(
            "SELECT pid FROM pg_stat_activity WHERE application_name = @app AND query ILIKE 'LISTEN%' LIMIT 1", ("app", app));
        await SignalAsync("STOP", listenerPid);
        try
        {
            // The frozen backend keeps its TCP connection open but never answers: half-open.
            await db.ExecuteAsync("INSERT INTO frozen_items VALUES (2, 'while frozen')");
            await host.Sink.WaitForCountAsync(2, TimeSpan.FromSeconds(30));
        }
        finally
        {
            await SignalAsync("CONT", listenerPid);
            await using var cleanup = new NpgsqlConnection(db.ConnectionString);
            await cleanup.OpenAsync();
            await using var terminate = new NpgsqlCommand($"SELECT pg_terminate_backend({listenerPid})", cleanup);
            await terminate.ExecuteNonQueryAsync();
        }

        FaultHelpers.Ids(host.Sink).Should().Equal(1, 2);
    }

    private static async Task SignalAsync(string signal, int pid)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", $"-{signal} {pid}") { UseShellExecute = false })!;
        await kill.WaitForExitAsync();
        kill.ExitCode.Should().Be(0, $"kill -{signal} {pid} must succeed");
    }
}
