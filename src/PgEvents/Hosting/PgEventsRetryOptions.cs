namespace PgEvents;

/// <summary>
/// How a consumer retries an event whose handlers fail (<see cref="PgEventsOptions.Retry"/>): with
/// capped exponential backoff, and under <see cref="FailurePolicy.DeadLetter"/> up to
/// <see cref="MaxAttempts"/> times. A snapshot chunk that fails to read waits with the same backoff.
/// </summary>
public sealed class PgEventsRetryOptions
{
    /// <summary>Delay before the first retry of a failing event. Default 200 ms.</summary>
    public TimeSpan InitialDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest delay between retries of a failing event. Default 30 seconds.</summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Factor applied to the delay after each failed attempt. Default 2.</summary>
    public double BackoffMultiplier { get; set; } = 2;

    /// <summary>Attempts before an event is dead-lettered under <see cref="FailurePolicy.DeadLetter"/>. Default 5.</summary>
    public int MaxAttempts { get; set; } = 5;
}
