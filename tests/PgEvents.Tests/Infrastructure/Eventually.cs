using System.Diagnostics;

namespace PgEvents.Tests.Infrastructure;

/// <summary>
/// The one way tests wait for state they can only poll (a consumer's status, the server's locks, a
/// health check, a gauge): it checks a real condition, never sleeps in its place, and on timeout
/// throws a <see cref="TimeoutException"/> that says what was awaited and what was last seen. Prefer a
/// signal (<see cref="EventSink.WaitForCountAsync"/>, <see cref="LogCapture.WaitForAsync"/>, a
/// <see cref="TaskCompletionSource"/>) wherever the awaited thing can raise one.
/// </summary>
internal static class Eventually
{
    /// <summary>How long a test waits unless it says otherwise: a generous guard against a hang, not a performance bound.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(10);

    /// <summary>Polls <paramref name="condition"/> until it holds.</summary>
    /// <param name="condition">The state awaited, read anew at each poll.</param>
    /// <param name="because">What is awaited, e.g. "the consumer should become active".</param>
    /// <param name="timeout">How long to wait; <see cref="DefaultTimeout"/> when null.</param>
    public static Task UntilAsync(Func<Task<bool>> condition, string because, TimeSpan? timeout = null) =>
        UntilAsync(condition, done => done, _ => because, timeout);

    /// <summary>Polls a synchronous <paramref name="condition"/> (one that reads in-process state) until it holds.</summary>
    public static Task UntilAsync(Func<bool> condition, string because, TimeSpan? timeout = null) =>
        UntilAsync(() => Task.FromResult(condition()), because, timeout);

    /// <summary>Polls <paramref name="probe"/> until its value is <paramref name="accepted"/>, and returns that value.</summary>
    public static Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> accepted, string because, TimeSpan? timeout = null) =>
        UntilAsync(probe, accepted, last => $"{because}; last seen: {last}", timeout);

    /// <summary>
    /// Polls <paramref name="probe"/> until its value is <paramref name="accepted"/>, and returns that value;
    /// on timeout the message is <paramref name="describe"/> applied to the last value seen.
    /// </summary>
    public static async Task<T> UntilAsync<T>(Func<Task<T>> probe, Func<T, bool> accepted, Func<T, string> describe, TimeSpan? timeout = null)
    {
        var limit = timeout ?? DefaultTimeout;
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            var value = await probe();
            if (accepted(value))
            {
                return value;
            }

            if (Stopwatch.GetElapsedTime(started) > limit)
            {
                throw new TimeoutException($"Waited {limit.TotalSeconds:0.###} s for: {describe(value)}");
            }

            await Task.Delay(Interval);
        }
    }
}
