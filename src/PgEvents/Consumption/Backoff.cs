namespace PgEvents;

/// <summary>
/// Capped exponential backoff, optionally with jitter. Delays grow by <c>multiplier</c> from
/// <c>initial</c> up to <c>max</c>; <see cref="Reset"/> starts over. Jitter takes up to that fraction
/// off each delay (never adds to it), so many instances that lost the same server do not all come
/// back in the same millisecond, and no delay ever exceeds the configured cap.
/// </summary>
internal sealed class Backoff
{
    private readonly TimeSpan _initial;
    private readonly double _multiplier;
    private readonly TimeSpan _max;
    private readonly double _jitter;
    private readonly Func<double> _random;
    private TimeSpan _next;

    public Backoff(TimeSpan initial, double multiplier, TimeSpan max, double jitter = 0, Func<double>? random = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(initial, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(multiplier, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(jitter, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(jitter, 1);
        _initial = initial;
        _multiplier = multiplier;
        _max = max < initial ? initial : max;
        _jitter = jitter;
        _random = random ?? Random.Shared.NextDouble;
        _next = initial;
    }

    /// <summary>Failed attempts since the last <see cref="Reset"/>.</summary>
    public int Attempts { get; private set; }

    /// <summary>The delay to wait before the next attempt; advances the schedule.</summary>
    public TimeSpan Next()
    {
        var delay = _next;
        Attempts++;

        // Computed in double and compared before converting: a huge multiplier must cap, not overflow.
        var grown = _next.Ticks * _multiplier;
        _next = grown >= _max.Ticks ? _max : TimeSpan.FromTicks((long)grown);
        return _jitter == 0 ? delay : TimeSpan.FromTicks((long)(delay.Ticks * (1 - (_jitter * _random()))));
    }

    /// <summary>Starts the schedule over at the initial delay.</summary>
    public void Reset()
    {
        _next = _initial;
        Attempts = 0;
    }
}
