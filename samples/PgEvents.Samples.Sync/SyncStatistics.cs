namespace PgEvents.Samples.Sync;

/// <summary>
/// Counts what the handler applied. A singleton, because handlers are resolved in a new scope for
/// every batch and could not keep a count themselves.
/// </summary>
public sealed class SyncStatistics
{
    private long _eventsApplied;
    private long _batchesApplied;

    /// <summary>Events applied to the replica so far; a redelivered event counts again.</summary>
    public long EventsApplied => Interlocked.Read(ref _eventsApplied);

    /// <summary>Replica transactions committed so far, one per delivered batch.</summary>
    public long BatchesApplied => Interlocked.Read(ref _batchesApplied);

    /// <summary>Records one batch of <paramref name="events"/> applied in one replica transaction.</summary>
    /// <param name="events">Changes in the batch.</param>
    public void RecordApplied(int events)
    {
        Interlocked.Add(ref _eventsApplied, events);
        Interlocked.Increment(ref _batchesApplied);
    }
}
