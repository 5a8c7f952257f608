using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

/// <summary>
/// Errors that reconnecting does not cure (a revoked privilege), met by a consumer that holds its
/// lease: the connection holding the lease must end with the failure, and the fault must show.
/// </summary>
public sealed class LeaseFaultTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private const int NonTransientFailureEvent = 24;
    private const int FaultClearedEvent = 25;
    private const int ConnectionLostEvent = 15;
    private static readonly HealthCheckContext Context = new();

    /// <summary>A log and a tracked table, and the privileges the README lists for a consumer that does not install.</summary>
    private async Task SetUpAsync(string schemaName, string table, LoginRole role)
    {
        var schema = await db.InstallAsync(schemaName);
        await db.ExecuteAsync($"CREATE TABLE {table} (id bigint PRIMARY KEY, label text NOT NULL)");
        await schema.TrackTableAsync(new TableName("public", table));
        var quotedSchema = SqlIdentifier.Quote(schemaName);
        await db.ExecuteAsync(
            $"""
            GRANT USAGE ON SCHEMA {quotedSchema} TO {role.Quoted};
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {quotedSchema} TO {role.Quoted};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quotedSchema} TO {role.Quoted};
            """);
    }

    private static ConsumerHost CreateConsumer(string connectionString, string schemaName, string table, LogCapture? logs, Action<PgEventsOptions>? configure = null) =>
        ConsumerHost.Create(connectionString, b => b.AddHandler<Item, RecordingHandler<Item>>(table),
            o =>
            {
                o.ConsumerName = "faulty";
                o.SchemaName = schemaName;
                o.InstallOnStart = false;
                o.StandbyRetryInterval = TimeSpan.FromMilliseconds(50);
                configure?.Invoke(o);
            },
            services: s =>
            {
                if (logs is not null)
                {
                    s.AddLogging(l => l.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
                }
            });

    private Task<List<(int Pid, string Application, string State)>> LeaseHoldersAsync(string schemaName, string consumer) =>
        FaultHelpers.LeaseHoldersAsync(db, schemaName, consumer);

    private static PgEventsHealthCheck HealthCheckOf(ConsumerHost host) =>
        new(host.Consumer, host.Services.GetRequiredService<IOptions<PgEventsOptions>>().Value.HealthCheckMaxLag);

    private static async Task<HealthCheckResult> WaitForHealthAsync(ConsumerHost host, HealthStatus expected)
    {
        var check = HealthCheckOf(host);
        return await Eventually.UntilAsync(() => check.CheckHealthAsync(Context), result => result.Status == expected,
            result => $"the health check should become {expected}; it is {result.Status}: {result.Description}");
    }

    [Fact]
    public async Task A_revoked_privilege_while_holding_the_lease_closes_that_connection_so_a_standby_takes_over()
    {
        const string schemaName = "lease_fault_log";
        await using var role = await LoginRole.CreateAsync(db, "pgevents_consumer");
        await SetUpAsync(schemaName, "lease_fault_items", role);
        var logsA = new LogCapture();

        await using var a = await CreateConsumer(role.ConnectionString("lease-fault-a"), schemaName, "lease_fault_items", logsA,
            o => o.ReconnectDelay = TimeSpan.FromMilliseconds(100)).StartAsync();
        await db.ExecuteAsync("INSERT INTO lease_fault_items VALUES (1, 'before')");
        await a.Sink.WaitForCountAsync(1);
        await using var b = await CreateConsumer(FaultHelpers.WithApplicationName(db.ConnectionString, "lease-fault-b"), schemaName, "lease_fault_items", logs: null)
            .StartAsync();
        await Eventually.UntilAsync(async () => (await b.Consumer.GetStatusAsync()).IsStandby, "B should stand by while A is active");

        // A needs to read the commit records; without the privilege its next read fails while it holds the lease.
        await db.ExecuteAsync($"REVOKE SELECT ON {SqlIdentifier.Quote(schemaName)}.transactions FROM {role.Quoted}");
        await db.ExecuteAsync("INSERT INTO lease_fault_items VALUES (2, 'after the revoke')");

        var failure = await logsA.WaitForAsync(e => e.EventId.Id == NonTransientFailureEvent, "A's non-transient failure");
        failure.Level.Should().Be(LogLevel.Error);
        failure.Message.Should().Contain("42501").And.Contain("permission denied for table transactions");

        // The lease went with A's connection: B takes over and delivers what A could not.
        await Eventually.UntilAsync(async () => (await b.Consumer.GetStatusAsync()).IsActive, "B should take over once A's connection is closed");
        await b.Sink.WaitForCountAsync(1);
        FaultHelpers.Ids(b.Sink).Should().Equal(2);
        var holders = await LeaseHoldersAsync(schemaName, "faulty");
        holders.Should().ContainSingle().Which.Application.Should().Be("lease-fault-b", "only B's working connection holds the lease");

        // A keeps retrying (now as a standby) and keeps reporting what stops it, though it cannot even read its status.
        var health = await HealthCheckOf(a).CheckHealthAsync(Context);
        health.Status.Should().Be(HealthStatus.Unhealthy);
        health.Description.Should().Contain("42501").And.Contain("permission denied for table transactions");
        health.Data["fault_sqlstate"].Should().Be("42501");
        logsA.WithEventId(ConnectionLostEvent).Should().BeEmpty("a refused privilege is not a lost connection");
    }

    [Fact]
    public async Task A_revoked_privilege_makes_the_consumer_unhealthy_naming_it_leaves_no_backend_holding_the_lease_and_it_recovers_when_granted_again()
    {
        const string schemaName = "privilege_fault_log";
        await using var role = await LoginRole.CreateAsync(db, "pgevents_consumer");
        await SetUpAsync(schemaName, "privilege_items", role);
        var logs = new LogCapture();
        await using var host = await CreateConsumer(role.ConnectionString("privilege-consumer"), schemaName, "privilege_items", logs,
            o => o.ReconnectDelay = TimeSpan.FromMilliseconds(500)).StartAsync();
        await db.ExecuteAsync("INSERT INTO privilege_items VALUES (1, 'before')");
        await host.Sink.WaitForCountAsync(1);
        await WaitForHealthAsync(host, HealthStatus.Healthy);

        // Delivery works, but saving the cursor does not: the fault shows on the first write.
        await db.ExecuteAsync($"REVOKE UPDATE ON {SqlIdentifier.Quote(schemaName)}.consumers FROM {role.Quoted}");
        await db.ExecuteAsync("INSERT INTO privilege_items VALUES (2, 'after the revoke')");

        var unhealthy = await WaitForHealthAsync(host, HealthStatus.Unhealthy);
        unhealthy.Description.Should().Contain("42501").And.Contain("permission denied for table consumers");
        unhealthy.Data["fault_sqlstate"].Should().Be("42501");
        var status = await host.Consumer.GetStatusAsync();
        status.Fault.Should().NotBeNull();
        status.Fault!.SqlState.Should().Be("42501");
        status.Fault.Message.Should().Be("permission denied for table consumers");
        var failure = logs.WithEventId(NonTransientFailureEvent).Should().NotBeEmpty().And.Subject.First();
        failure.Level.Should().Be(LogLevel.Error);
        failure.Message.Should().Contain("SQLSTATE 42501").And.Contain("permission denied for table consumers");

        // Between attempts no backend keeps the lease: the failed connection was closed, not pooled.
        await Eventually.UntilAsync(async () => (await LeaseHoldersAsync(schemaName, "faulty")).Count == 0,
            "the lease should be free between attempts, not held by an idle pooled connection");

        await db.ExecuteAsync($"GRANT UPDATE ON {SqlIdentifier.Quote(schemaName)}.consumers TO {role.Quoted}");

        var healthy = await WaitForHealthAsync(host, HealthStatus.Healthy);
        healthy.Data["role"].Should().Be("active");
        (await host.Consumer.GetStatusAsync()).Fault.Should().BeNull();
        await logs.WaitForAsync(e => e.EventId.Id == FaultClearedEvent, "the fault cleared");
        await db.ExecuteAsync("INSERT INTO privilege_items VALUES (3, 'after the grant')");
        await FaultHelpers.WaitForIdAsync(host.Sink, 3);
        FaultHelpers.ShouldBeCompleteAndOrdered(FaultHelpers.Ids(host.Sink), [1, 2, 3]);
        (await LeaseHoldersAsync(schemaName, "faulty")).Should().ContainSingle().Which.Application.Should().Be("privilege-consumer");
    }

    [Fact]
    public async Task A_terminated_working_connection_is_a_transient_fault_the_consumer_reconnects_without_reporting_a_fault()
    {
        const string schemaName = "transient_fault_log";
        await db.InstallAsync(schemaName);
        await db.ExecuteAsync("CREATE TABLE transient_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var logs = new LogCapture();
        const string app = "transient-consumer";
        await using var host = await CreateConsumer(FaultHelpers.WithApplicationName(db.ConnectionString, app), schemaName, "transient_items", logs,
            o => { o.InstallOnStart = true; o.ReconnectDelay = TimeSpan.FromMilliseconds(50); }).StartAsync();
        await db.ExecuteAsync("INSERT INTO transient_items VALUES (1, 'before')");
        await host.Sink.WaitForCountAsync(1);

        var holder = (await LeaseHoldersAsync(schemaName, "faulty")).Should().ContainSingle().Subject;
        await db.ExecuteAsync("SELECT pg_terminate_backend(@pid)", ("pid", holder.Pid));

        await logs.WaitForAsync(e => e.EventId.Id == ConnectionLostEvent, "the lost connection");
        await Eventually.UntilAsync(async () => (await LeaseHoldersAsync(schemaName, "faulty")).Any(h => h.Pid != holder.Pid),
            "the consumer should reconnect and take its lease again");
        await db.ExecuteAsync("INSERT INTO transient_items VALUES (2, 'after')");
        await host.Sink.WaitForCountAsync(2);

        logs.WithEventId(NonTransientFailureEvent).Should().BeEmpty("a terminated connection is transient");
        (await host.Consumer.GetStatusAsync()).Fault.Should().BeNull();
        (await HealthCheckOf(host).CheckHealthAsync(Context)).Status.Should().Be(HealthStatus.Healthy);
    }
}
