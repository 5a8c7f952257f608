using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Options;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Diagnostics;

public sealed record ObservedItem(long Id, string Label) : ITestRow;

/// <summary>Keeps the stopped <c>pgevents.deliver</c> activities of one consumer, in stop order.</summary>
public sealed class ActivityRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<Activity> _stopped = new();
    private readonly List<(int Count, TaskCompletionSource Signal)> _waiters = [];

    public ActivityRecorder(string consumer)
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "PgEvents",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (!Equals(activity.GetTagItem("pgevents.consumer"), consumer))
                {
                    return;
                }

                _stopped.Enqueue(activity);
                lock (_waiters)
                {
                    foreach (var waiter in _waiters.Where(w => _stopped.Count >= w.Count).ToList())
                    {
                        waiter.Signal.TrySetResult();
                        _waiters.Remove(waiter);
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public IReadOnlyList<Activity> Stopped => _stopped.ToArray();

    public async Task WaitForCountAsync(int count)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            if (_stopped.Count >= count)
            {
                return;
            }

            _waiters.Add((count, signal));
        }

        if (await Task.WhenAny(signal.Task, Task.Delay(TimeSpan.FromSeconds(10))) != signal.Task)
        {
            throw new TimeoutException($"Expected {count} activities, got {_stopped.Count}.");
        }
    }

    public void Dispose() => _listener.Dispose();
}

public sealed class ObservabilityTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static readonly HealthCheckContext Context = new();

    /// <summary>
    /// Creates the table and a consumer of it, not yet started: tests attach their collectors first,
    /// so no measurement of the run is missed.
    /// </summary>
    private async Task<ConsumerHost> CreateAsync<THandler>(string name, Action<PgEventsOptions>? configure = null, Action<IServiceCollection>? services = null)
        where THandler : class, IRowHandler<ObservedItem>
    {
        await db.ExecuteAsync($"CREATE TABLE {name} (id bigint PRIMARY KEY, label text NOT NULL)");
        return ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<ObservedItem, THandler>(name),
            o =>
            {
                o.ConsumerName = name;
                configure?.Invoke(o);
            },
            services: services);
    }

    /// <summary>
    /// Collects one instrument of the <c>PgEvents</c> meter that <paramref name="host"/>'s own
    /// <see cref="IMeterFactory"/> created: measurements of consumers in other containers never reach it,
    /// with no filtering by tag.
    /// </summary>
    private static MetricCollector<T> Collect<T>(ConsumerHost host, string instrument)
        where T : struct =>
        new(host.Services.GetRequiredService<IMeterFactory>(), "PgEvents", instrument);

    /// <summary>Waits until a consumer of the schema holds the doorbell and its session is idle (it sleeps, or is about to).</summary>
    private async Task WaitUntilAsleepAsync(string schemaName)
    {
        var doorbell = new SchemaSettings(schemaName, PgEventsSchemaOptions.DefaultNotificationChannel).DoorbellKey;
        await Eventually.UntilAsync(
            async () => await db.ScalarAsync<long>(
                """
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.classid::bigint = @class AND l.objid::bigint = @key AND l.objsubid = 2
                   AND l.granted AND a.state = 'idle'
                """,
                ("class", (long)SchemaSettings.AdvisoryLockClass), ("key", (long)(uint)doorbell)) > 0,
            "the consumer should go to sleep", Wait);
    }

    private async Task InsertAsync(string table, int from, int to)
    {
        for (var id = from; id <= to; id++)
        {
            await db.ExecuteAsync($"INSERT INTO {table} VALUES ({id}, 'item {id}')");
        }
    }

    private static Task<HealthCheckResult> WaitForHealthAsync(PgEventsHealthCheck check, HealthStatus expected) =>
        Eventually.UntilAsync(() => check.CheckHealthAsync(Context), result => result.Status == expected,
            result => $"the health check should become {expected}; it is {result.Status}: {result.Description}", Wait);

    /// <summary>Fails the first attempt on item <paramref name="id"/>, then lets it through.</summary>
    private static FailureSwitch FailOnce(long id) =>
        new() { FailingId = id, FailFirst = 1, Message = (item, _) => $"first attempt on item {item} fails" };

    private static PgEventsHealthCheck HealthCheckOf(ConsumerHost host) =>
        new(host.Consumer, host.Services.GetRequiredService<IOptions<PgEventsOptions>>().Value.HealthCheckMaxLag);

    [Fact]
    public async Task The_meter_counts_delivered_events_batches_handler_time_and_notify_wakeups_of_the_consumer()
    {
        // No polling during the test: a read after the consumer went idle can only be woken by NOTIFY.
        await using var host = await CreateAsync<RecordingHandler<ObservedItem>>("obs_metered", o => o.PollInterval = TimeSpan.FromMinutes(1));
        using var delivered = Collect<long>(host, "pgevents.events.delivered");
        using var durations = Collect<double>(host, "pgevents.handler.duration");
        using var batches = Collect<int>(host, "pgevents.batch.size");
        using var wakeUps = Collect<long>(host, "pgevents.wakeups");
        using var retries = Collect<long>(host, "pgevents.retries");
        await host.StartAsync();

        await db.ExecuteAsync("INSERT INTO obs_metered SELECT g, 'item ' || g FROM generate_series(1, 5) g");
        await host.Sink.WaitForCountAsync(5, Wait);

        // The consumer may still be reading when a row commits (then no wake-up is needed), so keep
        // writing single rows, each once the consumer holds the doorbell and waits, until one found
        // it asleep; the first that does must be a NOTIFY wake-up.
        var written = 5;
        while (wakeUps.LastMeasurement is null && written < 50)
        {
            written++;
            await WaitUntilAsleepAsync("log_obs_metered");
            await InsertAsync("obs_metered", written, written);
            await host.Sink.WaitForCountAsync(written, Wait);
        }

        // One measurement of 1 per delivered event, one duration per event (none failed).
        await delivered.WaitForMeasurementsAsync(written, Wait);
        await durations.WaitForMeasurementsAsync(written, Wait);

        var deliveredEvents = delivered.GetMeasurementSnapshot();
        deliveredEvents.EvaluateAsCounter().Should().Be(written);
        deliveredEvents.Should().OnlyContain(m => Equals(m.Tags["pgevents.table"], "obs_metered"));

        var handlerTimes = durations.GetMeasurementSnapshot();
        handlerTimes.Should().HaveCount(written, "one measurement per event");
        handlerTimes.Should().OnlyContain(m => m.Value >= 0 && m.Value < 10);

        var batchSizes = batches.GetMeasurementSnapshot();
        batchSizes.Sum(m => m.Value).Should().Be(written);
        batchSizes[0].Value.Should().Be(5, "the five rows of one transaction are read together");

        var wokenBy = wakeUps.GetMeasurementSnapshot();
        wokenBy.Should().Contain(m => Equals(m.Tags["pgevents.wakeup.source"], "notify"));
        wokenBy.Should().NotContain(m => Equals(m.Tags["pgevents.wakeup.source"], "poll"), "the poll interval is a minute");
        retries.GetMeasurementSnapshot().Should().BeEmpty();
    }

    [Fact]
    public async Task Consumers_in_two_containers_keep_their_metrics_apart()
    {
        // Both consumers run at once in one process; each container's meter factory makes its own
        // PgEvents meter, so each collector sees its own consumer's deliveries and nothing else.
        await using var left = await CreateAsync<RecordingHandler<ObservedItem>>("obs_apart_left");
        await using var right = await CreateAsync<RecordingHandler<ObservedItem>>("obs_apart_right");
        using var leftDelivered = Collect<long>(left, "pgevents.events.delivered");
        using var rightDelivered = Collect<long>(right, "pgevents.events.delivered");
        await left.StartAsync();
        await right.StartAsync();

        await InsertAsync("obs_apart_left", 1, 2);
        await InsertAsync("obs_apart_right", 1, 3);
        await left.Sink.WaitForCountAsync(2, Wait);
        await right.Sink.WaitForCountAsync(3, Wait);
        await leftDelivered.WaitForMeasurementsAsync(2, Wait);
        await rightDelivered.WaitForMeasurementsAsync(3, Wait);

        var leftEvents = leftDelivered.GetMeasurementSnapshot();
        leftEvents.EvaluateAsCounter().Should().Be(2);
        leftEvents.Should().OnlyContain(m => Equals(m.Tags["pgevents.consumer"], "obs_apart_left") && Equals(m.Tags["pgevents.table"], "obs_apart_left"));
        var rightEvents = rightDelivered.GetMeasurementSnapshot();
        rightEvents.EvaluateAsCounter().Should().Be(3);
        rightEvents.Should().OnlyContain(m => Equals(m.Tags["pgevents.consumer"], "obs_apart_right") && Equals(m.Tags["pgevents.table"], "obs_apart_right"));
        left.Services.GetRequiredService<IMeterFactory>().Should().NotBeSameAs(right.Services.GetRequiredService<IMeterFactory>());
    }

    /// <summary>
    /// Asks both lag gauges of the host for a measurement (observable gauges have no push) until
    /// <paramref name="condition"/> holds.
    /// </summary>
    private static Task WaitForGaugesAsync(MetricCollector<long> events, MetricCollector<double> seconds, Func<bool> condition, string because) =>
        Eventually.UntilAsync(
            () =>
            {
                events.RecordObservableInstruments();
                seconds.RecordObservableInstruments();
                return condition();
            },
            because, Wait);

    private static double LastGauge<T>(MetricCollector<T> gauge)
        where T : struct =>
        gauge.LastMeasurement is { } last ? Convert.ToDouble(last.Value, CultureInfo.InvariantCulture) : double.NaN;

    [Fact]
    public async Task The_lag_gauges_settle_at_zero_once_the_consumer_has_caught_up()
    {
        await using var host = await CreateAsync<RecordingHandler<ObservedItem>>("obs_lag", o => o.LagSampleInterval = TimeSpan.FromMilliseconds(20));
        using var lagEvents = Collect<long>(host, "pgevents.lag.events");
        using var lagSeconds = Collect<double>(host, "pgevents.lag.seconds");
        await host.StartAsync();
        await InsertAsync("obs_lag", 1, 3);
        await host.Sink.WaitForCountAsync(3, Wait);

        await WaitForGaugesAsync(lagEvents, lagSeconds, () => LastGauge(lagEvents) == 0 && LastGauge(lagSeconds) == 0,
            "a caught-up consumer has no lag");

        lagEvents.GetMeasurementSnapshot().Should().OnlyContain(m => m.Value >= 0);
        lagSeconds.GetMeasurementSnapshot().Should().OnlyContain(m => m.Value >= 0);
    }

    [Fact]
    public async Task The_lag_gauges_keep_counting_while_the_consumer_is_blocked_on_a_failing_event()
    {
        // Blocked is exactly when an operator looks at the lag: the gauges must not freeze at the
        // value they had before the failure.
        var health = new FailureSwitch { FailingId = 1 };
        await using var host = await CreateAsync<SwitchedHandler<ObservedItem>>("obs_lag_blocked",
            o => o.LagSampleInterval = TimeSpan.FromMilliseconds(20), s => s.AddSingleton(health));
        using var lagEvents = Collect<long>(host, "pgevents.lag.events");
        using var lagSeconds = Collect<double>(host, "pgevents.lag.seconds");
        await host.StartAsync();
        await InsertAsync("obs_lag_blocked", 1, 2);
        await WaitForGaugesAsync(lagEvents, lagSeconds, () => LastGauge(lagEvents) == 2, "two events wait behind the failing one");

        await InsertAsync("obs_lag_blocked", 3, 5);

        await WaitForGaugesAsync(lagEvents, lagSeconds, () => LastGauge(lagEvents) == 5, "the lag grows while the consumer stays blocked");
        LastGauge(lagSeconds).Should().BeGreaterThan(0);
        host.Sink.Deliveries.Should().BeEmpty();

        health.Failing = false;
        await host.Sink.WaitForCountAsync(5, Wait);
        await WaitForGaugesAsync(lagEvents, lagSeconds, () => LastGauge(lagEvents) == 0, "the lag drains once the event succeeds");
    }

    [Fact]
    public async Task The_lag_gauges_follow_a_consumer_working_through_a_backlog()
    {
        // A backlog read in small batches keeps the consumer busy: the gauges report it before it is
        // caught up, not only once it goes idle.
        var gate = new HandlerGate { HoldId = 150 };
        await using var host = await CreateAsync<GatedHandler<ObservedItem>>("obs_lag_backlog",
            o =>
            {
                o.BatchSize = 10;
                o.LagSampleInterval = TimeSpan.FromMilliseconds(20);
            },
            s => s.AddSingleton(gate));
        using var lagEvents = Collect<long>(host, "pgevents.lag.events");
        using var lagSeconds = Collect<double>(host, "pgevents.lag.seconds");
        await host.Consumer.InstallAsync();
        await db.ExecuteAsync("INSERT INTO obs_lag_backlog SELECT g, 'item ' || g FROM generate_series(1, 200) g");

        await host.StartAsync();
        await gate.Entered.Task.WaitAsync(Wait);

        // Held inside event 150 of 200, 15 batches in: 51 events are still undelivered.
        await WaitForGaugesAsync(lagEvents, lagSeconds, () => LastGauge(lagEvents) == 51, "the lag is measured in the middle of the backlog");
        gate.Release.SetResult();
        await host.Sink.WaitForCountAsync(200, Wait);
        await WaitForGaugesAsync(lagEvents, lagSeconds, () => LastGauge(lagEvents) == 0, "the backlog is drained");
    }

    [Fact]
    public async Task A_failed_attempt_is_counted_as_a_retry_and_the_event_is_counted_as_delivered_once()
    {
        await using var host = await CreateAsync<SwitchedHandler<ObservedItem>>("obs_retry",
            services: s => s.AddSingleton(FailOnce(2)));
        using var delivered = Collect<long>(host, "pgevents.events.delivered");
        using var retries = Collect<long>(host, "pgevents.retries");
        using var durations = Collect<double>(host, "pgevents.handler.duration");
        await host.StartAsync();

        await InsertAsync("obs_retry", 1, 3);
        await host.Sink.WaitForCountAsync(3, Wait);
        await delivered.WaitForMeasurementsAsync(3, Wait);

        var retried = retries.GetMeasurementSnapshot();
        retried.Should().ContainSingle().Which.Value.Should().Be(1);
        retried[0].Tags["pgevents.table"].Should().Be("obs_retry");
        delivered.GetMeasurementSnapshot().EvaluateAsCounter().Should().Be(3);
        durations.GetMeasurementSnapshot().Count.Should().BeGreaterThanOrEqualTo(4, "the failed attempt is timed too");
    }

    [Fact]
    public async Task Each_delivered_event_is_one_deliver_activity_tagged_with_consumer_table_operation_position_and_event_id()
    {
        using var activities = new ActivityRecorder("obs_traced");
        await using var host = await (await CreateAsync<RecordingHandler<ObservedItem>>("obs_traced")).StartAsync();

        await db.ExecuteAsync("INSERT INTO obs_traced SELECT g, 'item ' || g FROM generate_series(1, 3) g");
        await InsertAsync("obs_traced", 4, 4);
        await db.ExecuteAsync("UPDATE obs_traced SET label = 'changed' WHERE id = 2");
        await host.Sink.WaitForCountAsync(5, Wait);
        await activities.WaitForCountAsync(5);

        var stopped = activities.Stopped;
        stopped.Should().HaveCount(5);
        stopped.Select(a => (long)a.GetTagItem("pgevents.event_id")!).Should().Equal(host.Sink.Deliveries.Select(d => d.EventId));
        stopped.Select(a => (long)a.GetTagItem("pgevents.position")!).Should().Equal(host.Sink.Deliveries.Select(d => d.Position));
        stopped.Select(a => (string)a.GetTagItem("pgevents.operation")!).Should().Equal("Insert", "Insert", "Insert", "Insert", "Update");
        stopped.Should().OnlyContain(a => a.OperationName == "pgevents.deliver"
            && a.Kind == ActivityKind.Consumer
            && Equals(a.GetTagItem("pgevents.consumer"), "obs_traced")
            && Equals(a.GetTagItem("pgevents.table"), "\"public\".\"obs_traced\"")
            && a.Status != ActivityStatusCode.Error);
    }

    [Fact]
    public async Task A_failing_attempt_is_a_deliver_activity_with_error_status_and_the_successful_retry_is_another()
    {
        using var activities = new ActivityRecorder("obs_traced_fail");
        await using var host = await (await CreateAsync<SwitchedHandler<ObservedItem>>("obs_traced_fail",
            services: s => s.AddSingleton(FailOnce(1)))).StartAsync();

        await InsertAsync("obs_traced_fail", 1, 2);
        await host.Sink.WaitForCountAsync(2, Wait);
        await activities.WaitForCountAsync(3);

        var stopped = activities.Stopped;
        stopped.Should().HaveCount(3);
        var first = host.Sink.Deliveries[0];
        stopped[0].Status.Should().Be(ActivityStatusCode.Error);
        stopped[0].StatusDescription.Should().Contain("first attempt on item 1 fails");
        stopped[0].GetTagItem("pgevents.event_id").Should().Be(first.EventId);
        stopped[1].Status.Should().NotBe(ActivityStatusCode.Error);
        stopped[1].GetTagItem("pgevents.event_id").Should().Be(first.EventId, "the retry of the same event");
        stopped[2].Status.Should().NotBe(ActivityStatusCode.Error);
        stopped[2].GetTagItem("pgevents.event_id").Should().Be(host.Sink.Deliveries[1].EventId);
    }

    [Fact]
    public async Task The_health_check_is_healthy_while_the_consumer_is_active_and_caught_up()
    {
        await using var host = await (await CreateAsync<RecordingHandler<ObservedItem>>("hc_healthy")).StartAsync();
        await InsertAsync("hc_healthy", 1, 2);
        await host.Sink.WaitForCountAsync(2, Wait);

        var result = await HealthCheckOf(host).CheckHealthAsync(Context);

        result.Status.Should().Be(HealthStatus.Healthy, result.Description);
        result.Data["role"].Should().Be("active");
        result.Data["consumer"].Should().Be("hc_healthy");
        result.Data.Should().NotContainKey("blocked_table");
    }

    [Fact]
    public async Task The_health_check_is_degraded_while_blocked_on_a_failing_event_and_names_the_table_and_error()
    {
        var health = new FailureSwitch { FailingId = 2 };
        await using var host = await (await CreateAsync<SwitchedHandler<ObservedItem>>("hc_blocked", services: s => s.AddSingleton(health))).StartAsync();
        var check = HealthCheckOf(host);

        // Until it is connected, a started consumer is Degraded too ("connecting").
        await Eventually.UntilAsync(async () => (await host.Consumer.GetStatusAsync()).IsActive, "the consumer is active");
        await InsertAsync("hc_blocked", 1, 3);

        var result = await WaitForHealthAsync(check, HealthStatus.Degraded);

        result.Description.Should().Contain("\"public\".\"hc_blocked\"").And.Contain("boom on item 2");
        result.Data["role"].Should().Be("active");
        result.Data["blocked_table"].Should().Be("\"public\".\"hc_blocked\"");
        result.Data["blocked_error"].Should().Be("InvalidOperationException: boom on item 2");
        host.Sink.Deliveries.Should().ContainSingle();

        health.Failing = false;
        await host.Sink.WaitForCountAsync(3, Wait);
        await WaitForHealthAsync(check, HealthStatus.Healthy);
    }

    [Fact]
    public async Task The_health_check_is_degraded_when_the_lag_exceeds_HealthCheckMaxLag()
    {
        var gate = new HandlerGate { HoldId = 1 };
        await using var host = await (await CreateAsync<GatedHandler<ObservedItem>>("hc_lag",
            o => o.HealthCheckMaxLag = TimeSpan.FromMilliseconds(1), s => s.AddSingleton(gate))).StartAsync();
        await InsertAsync("hc_lag", 1, 2);
        await gate.Entered.Task.WaitAsync(Wait);

        // The consumer is busy with row 1, not blocked: only the lag can make it Degraded.
        var result = await WaitForHealthAsync(HealthCheckOf(host), HealthStatus.Degraded);

        result.Description.Should().Contain("lags");
        result.Data["role"].Should().Be("active");
        result.Data["lag_events"].Should().Be(2L);
        result.Data.Should().NotContainKey("blocked_table");
        var lenient = new PgEventsHealthCheck(host.Consumer, TimeSpan.FromMinutes(5));
        (await lenient.CheckHealthAsync(Context)).Status.Should().Be(HealthStatus.Healthy, "the same lag is within five minutes");

        gate.Release.SetResult();
        await host.Sink.WaitForCountAsync(2, Wait);
        await WaitForHealthAsync(HealthCheckOf(host), HealthStatus.Healthy);
    }

    [Fact]
    public async Task The_health_check_is_unhealthy_when_the_consumer_is_not_running()
    {
        await using var host = await CreateAsync<RecordingHandler<ObservedItem>>("hc_stopped");
        await host.Consumer.InstallAsync();
        var check = HealthCheckOf(host);

        var beforeStart = await check.CheckHealthAsync(Context);

        beforeStart.Status.Should().Be(HealthStatus.Unhealthy);
        beforeStart.Description.Should().Contain("not running");
        beforeStart.Data["role"].Should().Be("stopped");

        await host.StartAsync();
        await InsertAsync("hc_stopped", 1, 1);
        await host.Sink.WaitForCountAsync(1, Wait);
        (await check.CheckHealthAsync(Context)).Status.Should().Be(HealthStatus.Healthy);
        await host.StopAsync();

        var afterStop = await check.CheckHealthAsync(Context);

        afterStop.Status.Should().Be(HealthStatus.Unhealthy);
        afterStop.Data["role"].Should().Be("stopped");
    }
}
