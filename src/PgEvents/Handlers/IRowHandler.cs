namespace PgEvents;

/// <summary>
/// Receives the changes of the tables it is registered for, in commit order. Resolved from a new
/// DI scope for every event. Throwing blocks the consumer at this event: it is retried with backoff
/// and no later event is delivered until it succeeds.
/// </summary>
/// <typeparam name="TRow">The type each row is deserialized into.</typeparam>
public interface IRowHandler<TRow>
{
    /// <summary>Handles one change. May be called again for the same change (at-least-once).</summary>
    /// <param name="change">The change, with the row after it and, for updates, before it.</param>
    /// <param name="cancellationToken">Signalled when the consumer stops.</param>
    /// <returns>A task that completes when the change is handled.</returns>
    Task HandleAsync(RowChange<TRow> change, CancellationToken cancellationToken);
}
