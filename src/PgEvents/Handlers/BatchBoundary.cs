namespace PgEvents;

/// <summary>Where a batch delivered to an <see cref="IBatchHandler"/> may end.</summary>
public enum BatchBoundary
{
    /// <summary>
    /// After any change: batches are as large as <see cref="PgEventsOptions.BatchSize"/> and
    /// <see cref="PgEventsOptions.MaxBatchBytes"/> allow, and a source transaction may be split
    /// across batches. The default.
    /// </summary>
    Change,

    /// <summary>
    /// Only after the last change of a source transaction, so that a replica applying each batch in
    /// one transaction never shows part of a source transaction. A source transaction larger than the
    /// batch limits is delivered whole, as one oversized batch: memory then grows with that transaction.
    /// Isolating a failing change under <see cref="FailurePolicy.DeadLetter"/> delivers changes one
    /// at a time and so splits their transaction.
    /// </summary>
    Transaction,
}
