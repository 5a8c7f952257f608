using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Npgsql;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Hosting;

/// <summary>Several consumers in one generic host, and consumers built on the host's own data source.</summary>
public sealed class NamedConsumerTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task Two_named_consumers_in_one_host_deliver_their_own_tables_on_their_own_cursors_and_report_their_own_health()
    {
        await db.ExecuteAsync("CREATE TABLE named_sync (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE named_jobs (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>().AddSingleton(new FailureSwitch { FailingId = 2 });
        builder.Services.AddPgEvents("sync", o =>
        {
            o.ConnectionString = db.ConnectionString;
            GenericHosts.QuickRecovery(o);
        }).AddHandler<Item, RecordingHandler<Item>>("named_sync");
        builder.Services.AddPgEvents("jobs", o =>
        {
            o.ConnectionString = db.ConnectionString;
            GenericHosts.QuickRecovery(o);
        }).AddHandler<Item, SwitchedHandler<Item>>("named_jobs");
        builder.Services.AddHealthChecks().AddPgEvents("sync").AddPgEvents("jobs");
        using var host = builder.Build();
        var sink = host.Services.GetRequiredService<EventSink>();
        var failures = host.Services.GetRequiredService<FailureSwitch>();
        var health = host.Services.GetRequiredService<HealthCheckService>();

        await host.StartAsync();
        await db.ExecuteAsync("INSERT INTO named_jobs VALUES (1, 'job 1'), (2, 'job 2'), (3, 'job 3')");
        await db.ExecuteAsync("INSERT INTO named_sync VALUES (1, 'sync 1'), (2, 'sync 2'), (3, 'sync 3')");

        // The jobs consumer blocks on its row 2; the sync consumer, on the same log, does not care.
        await sink.WaitUntilAsync(d => d.Count(x => x.Table == "named_sync") == 3, "every sync row");
        await failures.WaitForAttemptsAsync(2);
        sink.Deliveries.Where(d => d.Table == "named_jobs").Select(d => ((Item)d.Row!).Label).Should().Equal("job 1");
        await Eventually.UntilAsync(
            async () => (await health.CheckHealthAsync()).Entries["pgevents-jobs"].Status == HealthStatus.Degraded,
            "the jobs check reports the blocked event");
        var report = await health.CheckHealthAsync();
        report.Entries["pgevents-sync"].Status.Should().Be(HealthStatus.Healthy);
        report.Entries["pgevents-jobs"].Description.Should().Contain("'jobs' is blocked").And.Contain("named_jobs");
        (await db.ScalarAsync<long>("SELECT count(*) FROM pgevents.consumers WHERE name IN ('sync', 'jobs')")).Should().Be(2, "each has a cursor of its own");

        failures.Failing = false;
        await sink.WaitUntilAsync(d => d.Count(x => x.Table == "named_jobs") == 3, "every job row once unblocked");
        var jobs = host.Services.GetRequiredKeyedService<IEventConsumer>("jobs");
        await Eventually.UntilAsync(async () => (await jobs.GetStatusAsync()).Blocked is null, "the jobs consumer is no longer blocked");
        (await health.CheckHealthAsync()).Status.Should().Be(HealthStatus.Healthy);

        await host.StopAsync();
        (await health.CheckHealthAsync()).Entries.Values.Should().OnlyContain(e => e.Status == HealthStatus.Unhealthy, "neither runs once the host stopped");
        sink.Deliveries.Select(d => d.Handler).Distinct().Should().BeEquivalentTo(["RecordingHandler`1", "switched"], "each table went to its own consumer's handler only");
    }

    [Fact]
    public async Task A_consumer_that_lost_its_connection_and_waits_to_reconnect_is_degraded_not_reported_as_stopped()
    {
        await db.ExecuteAsync("CREATE TABLE reconnecting_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("reconnecting", o =>
        {
            o.ConnectionString = new NpgsqlConnectionStringBuilder(db.ConnectionString) { ApplicationName = "reconnecting-test" }.ConnectionString;

            // Long enough that the check below runs while it waits.
            o.ReconnectDelay = TimeSpan.FromMinutes(2);
        }).AddHandler<Item, RecordingHandler<Item>>("reconnecting_items");
        builder.Services.AddHealthChecks().AddPgEvents("reconnecting");
        using var host = builder.Build();
        var health = host.Services.GetRequiredService<HealthCheckService>();
        var consumer = host.Services.GetRequiredKeyedService<IEventConsumer>("reconnecting");
        await host.StartAsync();
        await Eventually.UntilAsync(async () => (await consumer.GetStatusAsync()).IsActive, "the consumer is active");
        (await health.CheckHealthAsync()).Status.Should().Be(HealthStatus.Healthy);

        // Its working session: the one holding the lease.
        await db.ExecuteAsync(
            "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE a.application_name = 'reconnecting-test' AND EXISTS (SELECT FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory')");
        await Eventually.UntilAsync(async () => !(await consumer.GetStatusAsync()).IsActive, "the consumer noticed the lost connection");

        var entry = (await health.CheckHealthAsync()).Entries["pgevents-reconnecting"];
        entry.Status.Should().Be(HealthStatus.Degraded);
        entry.Description.Should().Be("PgEvents consumer 'reconnecting' is running and connecting.");
        entry.Data["role"].Should().Be("connecting");
        await host.StopAsync();
        (await health.CheckHealthAsync()).Entries["pgevents-reconnecting"].Status.Should().Be(HealthStatus.Unhealthy, "stopped for good now");
    }

    // Either way a connection comes back from the pool: reset by Npgsql on its next use, or as it was
    // left (the harshest pool). The second run on the same pool also meets the statements the first
    // consumer prepared, whatever Npgsql's reset did to them.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_consumer_on_the_hosts_pooled_data_source_delivers_and_leaves_neither_its_lease_nor_its_settings_in_the_pool(bool noResetOnClose)
    {
        var table = noResetOnClose ? "pooled_items" : "pooled_reset_items";
        var application = "host-pool-" + table;
        await db.ExecuteAsync($"CREATE TABLE {table} (id bigint PRIMARY KEY, label text NOT NULL)");

        // The test server commits asynchronously by default; this database's sessions must not, so
        // that a working session's setting left behind in the pool shows.
        var database = new NpgsqlConnectionStringBuilder(db.ConnectionString).Database!;
        await db.ExecuteAsync($"ALTER DATABASE \"{database}\" SET synchronous_commit = on; ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'");
        var connection = new NpgsqlConnectionStringBuilder(db.ConnectionString)
        {
            ApplicationName = application,

            NoResetOnClose = noResetOnClose,
            Pooling = true,
        };
        await using var hostSource = new NpgsqlDataSourceBuilder(connection.ConnectionString).Build();

        async Task<IHost> StartConsumerAsync()
        {
            var builder = GenericHosts.NewBuilder();
            builder.Services.AddSingleton<EventSink>().AddKeyedSingleton("events", hostSource);
            builder.Services.AddPgEvents("pooled", GenericHosts.QuickRecovery)
                .UseDataSource(sp => sp.GetRequiredKeyedService<NpgsqlDataSource>("events"))
                .AddHandler<Item, RecordingHandler<Item>>(table);
            var host = builder.Build();
            await host.StartAsync();
            return host;
        }

        using (var first = await StartConsumerAsync())
        {
            await db.ExecuteAsync($"INSERT INTO {table} VALUES (1, 'one')");
            await first.Services.GetRequiredService<EventSink>().WaitForCountAsync(1);
            (await db.ScalarAsync<long>(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = @app AND l.locktype = 'advisory'", ("app", application)))
                .Should().BePositive("the lease is held on a connection of the host's data source");
            await first.StopAsync();
        }

        (await db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE application_name = @app", ("app", application)))
            .Should().BePositive("the consumer's connections went back to the host's pool, still open");
        (await db.ScalarAsync<long>(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = @app AND l.locktype = 'advisory'", ("app", application)))
            .Should().Be(0, "the lease went with the session although its connection stayed in the pool");

        // Every pooled connection the consumer used comes back as the host left it.
        var idle = (int)await db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE application_name = @app", ("app", application));
        var borrowed = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < idle; i++)
            {
                var pooled = await hostSource.OpenConnectionAsync();
                borrowed.Add(pooled);
                await using var show = new NpgsqlCommand("SELECT current_setting('synchronous_commit') || ' ' || current_setting('default_transaction_isolation'), (SELECT count(*) FROM pg_listening_channels())", pooled);
                await using var reader = await show.ExecuteReaderAsync();
                await reader.ReadAsync();
                (reader.GetString(0), reader.GetInt64(1)).Should().Be(("on repeatable read", 0L), "the consumer's asynchronous commit and isolation must not reach the host's transactions");
            }
        }
        finally
        {
            foreach (var pooled in borrowed)
            {
                await pooled.DisposeAsync();
            }
        }

        // A second instance takes over at once: nothing idle in the pool holds the lease.
        using var second = await StartConsumerAsync();
        await db.ExecuteAsync($"INSERT INTO {table} VALUES (2, 'two')");
        var sink = second.Services.GetRequiredService<EventSink>();
        await sink.WaitForCountAsync(1);
        sink.Deliveries.Select(d => ((Item)d.Row!).Label).Should().Equal("two");
        await second.StopAsync();

        // The host's data source is the host's: PgEvents did not dispose it.
        await using var after = await hostSource.OpenConnectionAsync();
        after.State.Should().Be(System.Data.ConnectionState.Open);
    }
}
