using System.Threading.Channels;
using Microsoft.Extensions.Time.Testing;

namespace PgEvents.UnitTests.Infrastructure;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that reports every timer it creates, so a test can wait until the
/// code under test is really waiting (its Task.Delay registered) before it moves the clock, and can
/// read how long that wait is.
/// </summary>
public sealed class RecordingTimeProvider : FakeTimeProvider
{
    private readonly Channel<TimeSpan> _timers = Channel.CreateUnbounded<TimeSpan>();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        _timers.Writer.TryWrite(dueTime);
        return timer;
    }

    /// <summary>The due time of the next timer created; fails the test if none comes within a few seconds.</summary>
    public async Task<TimeSpan> NextTimerAsync()
    {
        using var guard = new CancellationTokenSource(Guard.Timeout);
        return await _timers.Reader.ReadAsync(guard.Token);
    }
}
