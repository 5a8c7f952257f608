using Microsoft.Extensions.Time.Testing;

namespace PgEvents.UnitTests.Hosting;

public sealed class PgEventsOptionsValidatorTests
{
    private static PgEventsOptions Valid() => new() { ConnectionString = "Host=db.example;Database=app;Username=app" };

    private static IReadOnlyList<string> FailuresOf(Action<PgEventsOptions> change)
    {
        var options = Valid();
        change(options);
        var result = new PgEventsOptionsValidator().Validate(null, options);
        return result.Failed ? result.Failures!.ToList() : [];
    }

    [Fact]
    public void Default_options_with_a_connection_string_are_valid() =>
        new PgEventsOptionsValidator().Validate(null, Valid()).Succeeded.Should().BeTrue();

    public static TheoryData<string, Action<PgEventsOptions>, string> BadOptions => new()
    {
        { "ConnectionString", o => o.ConnectionString = null, "is required" },
        { "ConnectionString", o => o.ConnectionString = "   ", "is required" },
        { "ConnectionString", o => o.ConnectionString = "Hots=db;Database=app", "not a valid Npgsql connection string" },
        { "ConnectionString", o => o.ConnectionString = "no equals sign here", "not a valid Npgsql connection string" },
        { "SchemaName", o => o.SchemaName = "", "cannot be null or empty" },
        { "SchemaName", o => o.SchemaName = new string('s', 64), "longer than 63 bytes" },
        { "SchemaName", o => o.SchemaName = "it's", "' or $" },
        { "SchemaName", o => o.SchemaName = "cost$", "' or $" },
        { "SchemaName", o => o.SchemaName = "nul\0", "NUL" },
        { "NotificationChannel", o => o.NotificationChannel = "", "cannot be null or empty" },
        { "NotificationChannel", o => o.NotificationChannel = new string('c', 64), "longer than 63 bytes" },
        { "ConsumerName", o => o.ConsumerName = " ", "cannot be empty" },
        { "PollInterval", o => o.PollInterval = TimeSpan.Zero, "must be positive" },
        { "LagSampleInterval", o => o.LagSampleInterval = TimeSpan.FromSeconds(-1), "must be positive" },
        { "Retry.InitialDelay", o => o.Retry.InitialDelay = TimeSpan.Zero, "must be positive" },
        { "Retry.MaxDelay", o => o.Retry.MaxDelay = TimeSpan.FromMilliseconds(100), "must not be shorter than Retry.InitialDelay" },
        { "ReconnectDelay", o => o.ReconnectDelay = TimeSpan.Zero, "must be positive" },
        { "Retry.BackoffMultiplier", o => o.Retry.BackoffMultiplier = 0.5, "at least 1" },
        { "Retry.BackoffMultiplier", o => o.Retry.BackoffMultiplier = double.NaN, "at least 1" },
        { "BatchSize", o => o.BatchSize = 0, "between 1 and 100000" },
        { "BatchSize", o => o.BatchSize = 100_001, "between 1 and 100000" },
        { "SnapshotChunkSize", o => o.SnapshotChunkSize = 0, "between 1 and 100000" },
        { "SnapshotChunkSize", o => o.SnapshotChunkSize = 100_001, "between 1 and 100000" },
        { "UnmappedTablePolicy", o => o.UnmappedTablePolicy = (UnmappedTablePolicy)42, "unknown value 42" },
        { "StandbyRetryInterval", o => o.StandbyRetryInterval = TimeSpan.Zero, "must be positive" },
        { "KeepAliveInterval", o => o.KeepAliveInterval = TimeSpan.Zero, "must be positive" },
        { "Retention.Interval", o => o.Retention.Interval = TimeSpan.Zero, "must be positive" },
        { "HealthCheckMaxLag", o => o.HealthCheckMaxLag = TimeSpan.Zero, "must be positive" },
        { "Retention.Age", o => o.Retention.Age = TimeSpan.FromDays(-1), "cannot be negative" },
        { "Retention.BatchSize", o => o.Retention.BatchSize = 0, "at least 1" },
        { "FailurePolicy", o => o.FailurePolicy = (FailurePolicy)42, "unknown value 42" },
        { "Retry.MaxAttempts", o => o.Retry.MaxAttempts = 0, "at least 1" },
        { "JsonSerializerOptions", o => o.JsonSerializerOptions = null!, "cannot be null" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void Each_bad_option_fails_with_a_message_that_names_it(string option, Action<PgEventsOptions> change, string explanation)
    {
        var failures = FailuresOf(change);

        failures.Should().NotBeEmpty();
        failures.Should().OnlyContain(f => f.StartsWith($"PgEventsOptions.{option} ", StringComparison.Ordinal),
            "a bad {0} must not be blamed on another option", option);
        failures.Should().Contain(f => f.Contains(explanation, StringComparison.Ordinal));
    }

    [Fact]
    public void A_zero_retry_max_delay_is_reported_both_as_not_positive_and_as_shorter_than_the_initial_delay()
    {
        var failures = FailuresOf(o => o.Retry.MaxDelay = TimeSpan.Zero);

        failures.Should().HaveCount(2).And.OnlyContain(f => f.StartsWith("PgEventsOptions.Retry.MaxDelay", StringComparison.Ordinal));
    }

    [Fact]
    public void Failures_show_the_value_that_was_given()
    {
        FailuresOf(o => o.BatchSize = 0).Should().ContainSingle().Which.Should().Contain("it is 0");
        FailuresOf(o => o.PollInterval = TimeSpan.FromSeconds(-2)).Should().ContainSingle().Which.Should().Contain("-00:00:02");
        FailuresOf(o => o.SchemaName = "it's").Should().ContainSingle().Which.Should().Contain("'it's'");
    }

    [Fact]
    public void Every_problem_is_reported_at_once()
    {
        var failures = FailuresOf(o =>
        {
            o.ConnectionString = null;
            o.ConsumerName = "";
            o.BatchSize = -1;
            o.Retry.MaxAttempts = 0;
        });

        failures.Should().HaveCount(4);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100_000)]
    public void Batch_sizes_at_the_limits_are_accepted(int size) =>
        FailuresOf(o => o.BatchSize = size).Should().BeEmpty();

    [Fact]
    public void Optional_and_boundary_values_are_accepted()
    {
        FailuresOf(o => o.Retention.Age = null).Should().BeEmpty("null keeps every event");
        FailuresOf(o => o.Retention.Age = TimeSpan.Zero).Should().BeEmpty();
        FailuresOf(o => o.Retry.BackoffMultiplier = 1).Should().BeEmpty();
        FailuresOf(o => o.Retry.MaxDelay = o.Retry.InitialDelay).Should().BeEmpty();
        FailuresOf(o => o.NotificationChannel = "price$changes").Should().BeEmpty("only the schema name is written into string literals");
        FailuresOf(o => o.SchemaName = "Event Log \"v2\"").Should().BeEmpty("names are quoted, so spaces and double quotes are fine");
    }

    public static TheoryData<string, Action<PgEventsOptions>> IntervalsLongerThanATimerCanWait => new()
    {
        { "PollInterval", o => o.PollInterval = TimeSpan.FromDays(60) },
        { "StandbyRetryInterval", o => o.StandbyRetryInterval = TimeSpan.FromDays(60) },
        { "Retention.Interval", o => o.Retention.Interval = TimeSpan.FromDays(60) },
        { "LagSampleInterval", o => o.LagSampleInterval = TimeSpan.FromDays(60) },
        { "ReconnectDelay", o => o.ReconnectDelay = TimeSpan.FromDays(60) },
        { "Retry.MaxDelay", o => o.Retry.MaxDelay = TimeSpan.FromDays(60) },
    };

    [Fact]
    public async Task A_wait_longer_than_about_49_days_cannot_be_made_so_such_intervals_fail_at_run_time()
    {
        // Why the next test matters: every timer interval option ends up in Task.Delay (or a wait built
        // on it), which refuses anything above uint.MaxValue - 1 milliseconds (~49.7 days). Should the
        // waits learn to clamp instead, delete this test together with the next one.
        var wait = () => new WakeUpSignal().WaitAsync(TimeSpan.FromDays(60), new FakeTimeProvider(), CancellationToken.None);

        await wait.Should().ThrowAsync<ArgumentOutOfRangeException>();
    }

    [Theory]
    [MemberData(nameof(IntervalsLongerThanATimerCanWait))]
    public void An_interval_longer_than_a_timer_can_wait_is_refused_at_start(string option, Action<PgEventsOptions> change) =>
        FailuresOf(change).Should().Contain(f => f.StartsWith($"PgEventsOptions.{option} ", StringComparison.Ordinal));
}
