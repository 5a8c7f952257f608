using Microsoft.Extensions.Time.Testing;
using PgEvents.UnitTests.Infrastructure;

namespace PgEvents.UnitTests.WakeUp;

public sealed class WakeUpSignalTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(1);

    private readonly RecordingTimeProvider _time = new();
    private readonly WakeUpSignal _signal = new();

    [Fact]
    public async Task A_set_before_the_wait_is_not_lost()
    {
        _signal.Set();

        var wait = _signal.WaitAsync(Timeout, _time, CancellationToken.None);

        wait.IsCompleted.Should().BeTrue("a pending wake-up must not wait for anything");
        (await wait).Should().BeTrue();
    }

    [Fact]
    public async Task A_set_between_reset_and_wait_is_not_lost()
    {
        _signal.Reset();
        _signal.Set(); // a notification that arrives while the consumer reads

        (await _signal.WaitAsync(Timeout, _time, CancellationToken.None).Within()).Should().BeTrue();
    }

    [Fact]
    public async Task A_set_during_the_wait_wakes_it_before_the_timeout()
    {
        var wait = _signal.WaitAsync(Timeout, _time, CancellationToken.None);
        await _time.NextTimerAsync();
        wait.IsCompleted.Should().BeFalse();

        _signal.Set();

        (await wait.Within()).Should().BeTrue();
    }

    [Fact]
    public async Task The_wait_times_out_with_false_once_the_clock_passes_the_timeout()
    {
        var wait = _signal.WaitAsync(Timeout, _time, CancellationToken.None);
        (await _time.NextTimerAsync()).Should().Be(Timeout);

        _time.Advance(Timeout);

        (await wait.Within()).Should().BeFalse();
    }

    [Fact]
    public async Task The_wait_has_not_timed_out_just_before_the_timeout()
    {
        var wait = _signal.WaitAsync(Timeout, _time, CancellationToken.None);
        await _time.NextTimerAsync();

        _time.Advance(Timeout - TimeSpan.FromTicks(1));
        _signal.Set();

        (await wait.Within()).Should().BeTrue("the timer had not fired, so the signal came first");
    }

    [Fact]
    public async Task Many_sets_collapse_into_one_wake_up_that_one_reset_clears()
    {
        for (var i = 0; i < 5; i++)
        {
            _signal.Set();
        }

        (await _signal.WaitAsync(Timeout, _time, CancellationToken.None)).Should().BeTrue();
        _signal.Reset();

        var wait = _signal.WaitAsync(Timeout, _time, CancellationToken.None);
        await _time.NextTimerAsync();
        _time.Advance(Timeout);
        (await wait.Within()).Should().BeFalse("the five sets were one wake-up, consumed by the first wait");
    }

    [Fact]
    public async Task A_wake_up_stays_pending_for_every_wait_until_it_is_reset()
    {
        _signal.Set();

        (await _signal.WaitAsync(Timeout, _time, CancellationToken.None)).Should().BeTrue();
        (await _signal.WaitAsync(Timeout, _time, CancellationToken.None)).Should().BeTrue();
    }

    [Fact]
    public async Task Reset_without_a_pending_wake_up_keeps_a_running_wait_wakeable()
    {
        var wait = _signal.WaitAsync(Timeout, _time, CancellationToken.None);
        await _time.NextTimerAsync();

        _signal.Reset();
        _signal.Set();

        (await wait.Within()).Should().BeTrue();
    }

    [Fact]
    public async Task Cancelling_a_wait_throws_OperationCanceledException()
    {
        using var cancel = new CancellationTokenSource();
        var wait = _signal.WaitAsync(Timeout, _time, cancel.Token);
        await _time.NextTimerAsync();

        await cancel.CancelAsync();

        await wait.Awaiting(w => w.Within()).Should().ThrowAsync<OperationCanceledException>();
    }

    [Fact]
    public async Task A_wait_with_an_already_cancelled_token_throws_unless_a_wake_up_is_pending()
    {
        using var cancel = new CancellationTokenSource();
        await cancel.CancelAsync();

        await _signal.Awaiting(s => s.WaitAsync(Timeout, _time, cancel.Token)).Should().ThrowAsync<OperationCanceledException>();

        _signal.Set();
        (await _signal.WaitAsync(Timeout, _time, cancel.Token)).Should().BeTrue("a pending wake-up is returned without waiting");
    }

    [Fact]
    public async Task A_finished_wait_leaves_no_timer_that_fires_later()
    {
        var fired = 0;
        var time = new CountingTimeProvider(() => Interlocked.Increment(ref fired));
        var wait = _signal.WaitAsync(TimeSpan.FromMinutes(1), time, CancellationToken.None);
        _signal.Set();
        (await wait.Within()).Should().BeTrue();

        time.Advance(TimeSpan.FromHours(1));

        fired.Should().Be(0, "the timeout's timer is cancelled once the signal won");
    }

    /// <summary>Counts timer callbacks that run.</summary>
    private sealed class CountingTimeProvider(Action onFire) : FakeTimeProvider
    {
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            base.CreateTimer(s => { onFire(); callback(s); }, state, dueTime, period);
    }
}
