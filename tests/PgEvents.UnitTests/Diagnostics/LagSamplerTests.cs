using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using PgEvents.UnitTests.Infrastructure;

namespace PgEvents.UnitTests.Diagnostics;

public sealed class LagSamplerTests : IDisposable
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private readonly RecordingTimeProvider _time = new();
    private readonly FakeLogger _logger = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<int> _measured = Channel.CreateUnbounded<int>();
    private int _calls;

    public void Dispose() => _stop.Dispose();

    private LagSampler Sampler(Func<int, CancellationToken, Task<LagSample>> measure) =>
        new(async ct =>
        {
            var call = Interlocked.Increment(ref _calls);
            try
            {
                return await measure(call, ct);
            }
            finally
            {
                _measured.Writer.TryWrite(call);
            }
        }, Interval, _time, _logger, "orders-sync");

    private async Task<int> NextMeasurementAsync()
    {
        using var guard = new CancellationTokenSource(Guard.Timeout);
        return await _measured.Reader.ReadAsync(guard.Token);
    }

    [Fact]
    public async Task It_measures_at_once_and_again_after_each_interval()
    {
        var sampler = Sampler((call, _) => Task.FromResult(new LagSample(call * 10, call)));
        sampler.Last.Should().BeNull("nothing was measured yet");

        var run = sampler.RunAsync(_stop.Token);
        (await NextMeasurementAsync()).Should().Be(1);
        (await _time.NextTimerAsync()).Should().Be(Interval, "a quick measurement pauses for the interval");
        sampler.Last.Should().Be(new LagSample(10, 1));

        _time.Advance(Interval);
        (await NextMeasurementAsync()).Should().Be(2);
        await _time.NextTimerAsync(); // the sample is stored before the next pause starts
        sampler.Last.Should().Be(new LagSample(20, 2));

        await _stop.CancelAsync();
        await run.Within();
    }

    [Fact]
    public async Task It_does_not_measure_again_before_the_interval_has_passed()
    {
        var sampler = Sampler((call, _) => Task.FromResult(new LagSample(call, call)));
        var run = sampler.RunAsync(_stop.Token);
        await NextMeasurementAsync();
        await _time.NextTimerAsync();

        _time.Advance(Interval - TimeSpan.FromTicks(1));

        _calls.Should().Be(1);
        await _stop.CancelAsync();
        await run.Within();
        _calls.Should().Be(1);
    }

    [Fact]
    public async Task After_a_slow_measurement_it_pauses_ten_times_as_long_as_the_measurement_took()
    {
        var took = TimeSpan.FromSeconds(3);
        var sampler = Sampler((call, _) =>
        {
            if (call == 1)
            {
                _time.Advance(took); // counting a huge backlog
            }

            return Task.FromResult(new LagSample(1_000_000, call));
        });

        var run = sampler.RunAsync(_stop.Token);
        await NextMeasurementAsync();

        (await _time.NextTimerAsync()).Should().Be(took * 10);
        _time.Advance((took * 10) - TimeSpan.FromTicks(1));
        _calls.Should().Be(1, "the pause is not over yet");
        _time.Advance(TimeSpan.FromTicks(1));
        (await NextMeasurementAsync()).Should().Be(2);

        await _stop.CancelAsync();
        await run.Within();
    }

    [Fact]
    public async Task A_measurement_a_little_slower_than_a_tenth_of_the_interval_already_lengthens_the_pause()
    {
        var took = TimeSpan.FromMilliseconds(600); // 10 x 600 ms = 6 s > 5 s interval
        var sampler = Sampler((call, _) =>
        {
            _time.Advance(took);
            return Task.FromResult(new LagSample(1, call));
        });

        var run = sampler.RunAsync(_stop.Token);

        (await _time.NextTimerAsync()).Should().Be(TimeSpan.FromSeconds(6));
        await _stop.CancelAsync();
        await run.Within();
    }

    [Fact]
    public async Task A_failed_measurement_keeps_the_previous_value_logs_and_is_retried_at_the_next_interval()
    {
        var failure = new InvalidOperationException("count timed out");
        var sampler = Sampler((call, _) => call == 2 ? Task.FromException<LagSample>(failure) : Task.FromResult(new LagSample(call, call)));
        var run = sampler.RunAsync(_stop.Token);
        await NextMeasurementAsync();
        await _time.NextTimerAsync();

        _time.Advance(Interval);
        (await NextMeasurementAsync()).Should().Be(2);
        (await _time.NextTimerAsync()).Should().Be(Interval);

        sampler.Last.Should().Be(new LagSample(1, 1), "the gauges keep the previous value");
        run.IsCompleted.Should().BeFalse("a failed measurement must not end the sampler");
        var record = _logger.Collector.GetSnapshot().Should().ContainSingle().Subject;
        record.Level.Should().Be(LogLevel.Debug);
        record.Exception.Should().BeSameAs(failure);
        record.Message.Should().Contain("orders-sync").And.Contain("could not measure its lag");

        _time.Advance(Interval);
        (await NextMeasurementAsync()).Should().Be(3);
        await _time.NextTimerAsync();
        sampler.Last.Should().Be(new LagSample(3, 3));

        await _stop.CancelAsync();
        await run.Within();
    }

    [Fact]
    public async Task A_timeout_inside_a_measurement_is_a_failure_not_a_stop()
    {
        var sampler = Sampler((call, _) => call == 1 ? throw new OperationCanceledException("command timeout") : Task.FromResult(new LagSample(call, call)));
        var run = sampler.RunAsync(_stop.Token);
        await NextMeasurementAsync();
        await _time.NextTimerAsync();

        _time.Advance(Interval);

        (await NextMeasurementAsync()).Should().Be(2);
        _logger.Collector.GetSnapshot().Should().ContainSingle(r => r.Exception is OperationCanceledException);
        await _stop.CancelAsync();
        await run.Within();
    }

    [Fact]
    public async Task Cancellation_during_the_pause_ends_the_run_quietly()
    {
        var sampler = Sampler((call, _) => Task.FromResult(new LagSample(call, call)));
        var run = sampler.RunAsync(_stop.Token);
        await _time.NextTimerAsync();

        await _stop.CancelAsync();

        await run.Within();
        run.IsCompletedSuccessfully.Should().BeTrue();
        _calls.Should().Be(1);
        _logger.Collector.Count.Should().Be(0);
    }

    [Fact]
    public async Task Cancellation_during_a_measurement_ends_the_run_quietly()
    {
        var sampler = Sampler(async (_, ct) =>
        {
            await Task.Delay(Timeout.InfiniteTimeSpan, ct);
            return new LagSample(0, 0);
        });
        var run = sampler.RunAsync(_stop.Token);

        await _stop.CancelAsync();

        await run.Within();
        run.IsCompletedSuccessfully.Should().BeTrue();
        _logger.Collector.Count.Should().Be(0, "stopping is not a failed measurement");
        sampler.Last.Should().BeNull();
    }

    [Fact]
    public async Task A_sampler_started_already_cancelled_measures_nothing()
    {
        await _stop.CancelAsync();
        var sampler = Sampler((call, _) => Task.FromResult(new LagSample(call, call)));

        await sampler.RunAsync(_stop.Token).Within();

        _calls.Should().Be(0);
    }
}
