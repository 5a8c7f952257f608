using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace PgEvents.UnitTests.Hosting;

public sealed class PgEventsHealthCheckTests
{
    private static readonly DateTimeOffset Since = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private static ConsumerStatus Status(
        bool isActive = true, bool isStandby = false, TimeSpan lag = default, BlockedEvent? blocked = null, ConsumerFault? fault = null) =>
        new("orders-sync", isActive, isStandby, headPosition: 100, cursorPosition: 90, cursorEventId: 1, lagEvents: 10, lag, blocked, fault, snapshots: []);

    private static Task<HealthCheckResult> Check(ConsumerStatus status, TimeSpan? maxLag = null) =>
        Check(new StubConsumer(() => Task.FromResult(status)), maxLag);

    private static Task<HealthCheckResult> Check(IEventConsumer consumer, TimeSpan? maxLag = null) =>
        new PgEventsHealthCheck(consumer, maxLag ?? TimeSpan.FromMinutes(5))
            .CheckHealthAsync(new HealthCheckContext());

    [Fact]
    public async Task An_active_consumer_that_keeps_up_is_healthy_with_its_numbers()
    {
        var result = await Check(Status(lag: TimeSpan.FromSeconds(3)));

        result.Status.Should().Be(HealthStatus.Healthy);
        result.Data.Should().Contain("role", "active").And.Contain("lag_events", 10L).And.Contain("cursor_position", 90L);
    }

    [Fact]
    public async Task A_standby_is_healthy()
    {
        var result = await Check(Status(isActive: false, isStandby: true));

        result.Status.Should().Be(HealthStatus.Healthy);
        result.Data.Should().Contain("role", "standby");
    }

    [Fact]
    public async Task A_stopped_consumer_is_unhealthy()
    {
        var result = await Check(Status(isActive: false));

        result.Status.Should().Be(HealthStatus.Unhealthy);
        result.Description.Should().Be("PgEvents consumer 'orders-sync' is not running.");
    }

    [Fact]
    public async Task Lag_above_the_limit_degrades_and_lag_at_the_limit_does_not()
    {
        (await Check(Status(lag: TimeSpan.FromMinutes(1)), TimeSpan.FromMinutes(1))).Status.Should().Be(HealthStatus.Healthy);

        var result = await Check(Status(lag: TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1)), TimeSpan.FromMinutes(1));

        result.Status.Should().Be(HealthStatus.Degraded);
        result.Description.Should().Contain("lags 00:01:01 (10 events)");
    }

    [Fact]
    public async Task A_blocked_consumer_is_degraded_naming_the_event_and_error()
    {
        var blocked = new BlockedEvent(42, 1, new TableName("public", "orders"), 3, "InvalidOperationException: boom", Since);

        var result = await Check(Status(blocked: blocked));

        result.Status.Should().Be(HealthStatus.Degraded);
        result.Description.Should().Be(
            "PgEvents consumer 'orders-sync' is blocked on \"public\".\"orders\" at position 42 after 3 attempts: InvalidOperationException: boom");
        result.Data.Should().Contain("blocked_position", 42L).And.Contain("blocked_attempts", 3);
    }

    [Fact]
    public async Task A_fault_makes_it_unhealthy_naming_the_error_even_while_active()
    {
        var fault = new ConsumerFault("42501", "permission denied for table transactions", Since, 4);

        var result = await Check(Status(fault: fault));

        result.Status.Should().Be(HealthStatus.Unhealthy);
        result.Description.Should().StartWith("PgEvents consumer 'orders-sync' cannot run: 42501: permission denied for table transactions (since 2025-06-01T12:00:00.0000000+00:00, 4 attempts)");
        result.Data.Should().Contain("fault_sqlstate", "42501").And.Contain("fault_attempts", 4);
    }

    [Fact]
    public async Task A_fault_without_a_server_code_leaves_the_code_out()
    {
        var result = await Check(Status(isActive: false, fault: new ConsumerFault(null, "not a session of its own", Since, 1)));

        result.Status.Should().Be(HealthStatus.Unhealthy);
        result.Description.Should().Contain("cannot run: not a session of its own (since");
        result.Data.Should().NotContainKey("fault_sqlstate");
    }

    [Fact]
    public async Task An_unreachable_database_is_unhealthy_with_the_error()
    {
        var error = new NpgsqlException("Failed to connect to 127.0.0.1:1");

        var result = await Check(new StubConsumer(() => Task.FromException<ConsumerStatus>(error)));

        result.Status.Should().Be(HealthStatus.Unhealthy);
        result.Description.Should().Be("PgEvents consumer 'orders-sync' cannot reach its database: Failed to connect to 127.0.0.1:1");
        result.Exception.Should().BeSameAs(error);
    }

    [Fact]
    public async Task Errors_other_than_database_and_timeout_errors_are_not_swallowed()
    {
        var check = () => Check(new StubConsumer(() => Task.FromException<ConsumerStatus>(new InvalidOperationException("bug"))));

        await check.Should().ThrowAsync<InvalidOperationException>();
    }

    private sealed class StubConsumer(Func<Task<ConsumerStatus>> status) : IEventConsumer
    {
        public string Name => "orders-sync";

        public Task<ConsumerStatus> GetStatusAsync(CancellationToken cancellationToken = default) => status();

        public Task InstallAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task RunAsync(CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task<IReadOnlyList<DeadLetter>> GetDeadLettersAsync(CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task ReplayDeadLetterAsync(long id, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task ResetCursorToPositionAsync(long position, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task ResetCursorToTimeAsync(DateTimeOffset committedSince, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task RequestSnapshotAsync(string table, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    }
}
