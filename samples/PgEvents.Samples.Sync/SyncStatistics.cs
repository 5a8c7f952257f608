namespace PgEvents.Samples.Sync;

/// <summary>
/// Counts what the handlers applied. A singleton, because handlers are resolved in a new scope for
/// every event and could not keep a count themselves.
/// </summary>
public sealed class SyncStatistics
{
    private long _eventsApplied;

    /// <summary>Events applied to the replica so far; a redelivered event counts again.</summary>
    public long EventsApplied => Interlocked.Read(ref _eventsApplied);

    /// <summary>Records one applied event.</summary>
    public void RecordApplied() => Interlocked.Increment(ref _eventsApplied);
}
