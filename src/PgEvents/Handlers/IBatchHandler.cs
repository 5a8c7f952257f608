namespace PgEvents;

/// <summary>
/// Receives the changes of its tables in batches: every change of one delivered batch that belongs
/// to a table it is registered for, in delivery order, in one call. Apply them in one transaction of
/// your own database (multi-row upserts, <c>COPY</c>, one flush) instead of one statement per change.
/// Resolved from a new DI scope for every batch. Throwing fails the whole batch: it is retried with
/// backoff and nothing after it is delivered until it succeeds (see <see cref="FailurePolicy"/>).
/// </summary>
public interface IBatchHandler
{
    /// <summary>Handles one batch. May be called again with the same changes (at-least-once).</summary>
    /// <param name="batch">The changes, in commit order and, within a transaction, in the order they were made.</param>
    /// <param name="cancellationToken">Signalled when the consumer stops.</param>
    /// <returns>A task that completes when every change of the batch is handled.</returns>
    Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken);
}
