namespace PgEvents;

/// <summary>Where a consumer stands, as read by <see cref="IEventConsumer.GetStatusAsync"/>.</summary>
public sealed class ConsumerStatus
{
    internal ConsumerStatus(
        string consumerName,
        bool isActive,
        bool isStandby,
        long headPosition,
        long cursorPosition,
        long cursorEventId,
        long lagEvents,
        TimeSpan lagTime,
        BlockedEvent? blocked,
        ConsumerFault? fault,
        IReadOnlyList<SnapshotProgress> snapshots)
    {
        ConsumerName = consumerName;
        IsActive = isActive;
        IsStandby = isStandby;
        HeadPosition = headPosition;
        CursorPosition = cursorPosition;
        CursorEventId = cursorEventId;
        LagEvents = lagEvents;
        LagTime = lagTime;
        Blocked = blocked;
        Fault = fault;
        Snapshots = snapshots;
    }

    /// <summary>The consumer name.</summary>
    public string ConsumerName { get; }

    /// <summary>Whether this instance is running and delivering.</summary>
    public bool IsActive { get; }

    /// <summary>Whether this instance runs but waits because another instance of the same consumer is active.</summary>
    public bool IsStandby { get; }

    /// <summary>The highest committed position in the log.</summary>
    public long HeadPosition { get; }

    /// <summary>The position of the last delivered event.</summary>
    public long CursorPosition { get; }

    /// <summary>The event id of the last delivered event.</summary>
    public long CursorEventId { get; }

    /// <summary>Committed events not yet delivered.</summary>
    public long LagEvents { get; }

    /// <summary>How long the oldest undelivered event has been committed; zero when caught up.</summary>
    public TimeSpan LagTime { get; }

    /// <summary>The event delivery is stuck on, or null.</summary>
    public BlockedEvent? Blocked { get; }

    /// <summary>
    /// The error that keeps this instance from running and that reconnecting does not cure (a missing
    /// privilege or table, a connection that is not a session of its own), or null. It clears once the
    /// instance runs again (saves its cursor, or finds nothing left to deliver).
    /// </summary>
    public ConsumerFault? Fault { get; }

    /// <summary>Every snapshot this consumer has had, one per table (the latest), oldest request first.</summary>
    public IReadOnlyList<SnapshotProgress> Snapshots { get; }

    /// <summary>The role, cursor, lag, and the fault or blocked event if any, for logs.</summary>
    /// <returns>For example <c>orders-sync: active, cursor 90/1, head 100, lag 10 events (00:00:03)</c>.</returns>
    public override string ToString()
    {
        var role = IsActive ? "active" : IsStandby ? "standby" : "stopped";
        var text = $"{ConsumerName}: {role}, cursor {CursorPosition}/{CursorEventId}, head {HeadPosition}, lag {LagEvents} events ({LagTime})";
        return Fault is not null ? $"{text}, cannot run: {Fault}"
            : Blocked is not null ? $"{text}, blocked on {Blocked}"
            : text;
    }
}
