namespace PgEvents;

/// <summary>Where a consumer stands.</summary>
/// <param name="ConsumerName">The consumer name.</param>
/// <param name="IsActive">Whether this instance is running and delivering.</param>
/// <param name="IsStandby">Whether this instance runs but waits because another instance of the same consumer is active.</param>
/// <param name="HeadPosition">The highest committed position in the log.</param>
/// <param name="CursorPosition">The position of the last delivered event.</param>
/// <param name="CursorEventId">The event id of the last delivered event.</param>
/// <param name="LagEvents">Committed events not yet delivered.</param>
/// <param name="LagTime">How long the oldest undelivered event has been committed; zero when caught up.</param>
/// <param name="Blocked">The event delivery is stuck on, or null.</param>
/// <param name="Fault">
/// The error that keeps this instance from running and that reconnecting does not cure (a missing
/// privilege or table, a connection that is not a session of its own), or null. It clears once the
/// instance runs again (saves its cursor, or finds nothing left to deliver).
/// </param>
public sealed record ConsumerStatus(
    string ConsumerName,
    bool IsActive,
    bool IsStandby,
    long HeadPosition,
    long CursorPosition,
    long CursorEventId,
    long LagEvents,
    TimeSpan LagTime,
    BlockedEvent? Blocked,
    ConsumerFault? Fault = null)
{
    /// <summary>Every snapshot this consumer has had, one per table (the latest), oldest request first.</summary>
    public IReadOnlyList<SnapshotProgress> Snapshots { get; init; } = [];
}
