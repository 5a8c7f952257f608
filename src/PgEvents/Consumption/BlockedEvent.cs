namespace PgEvents;

/// <summary>An event whose handlers keep failing; nothing after it is delivered until it succeeds.</summary>
public sealed class BlockedEvent
{
    internal BlockedEvent(long position, long eventId, TableName table, int attempts, string lastError, DateTimeOffset since)
    {
        Position = position;
        EventId = eventId;
        Table = table;
        Attempts = attempts;
        LastError = lastError;
        Since = since;
    }

    /// <summary>The commit position of its transaction.</summary>
    public long Position { get; }

    /// <summary>The event id.</summary>
    public long EventId { get; }

    /// <summary>The table it belongs to.</summary>
    public TableName Table { get; }

    /// <summary>Failed attempts so far.</summary>
    public int Attempts { get; }

    /// <summary>The last failure, type and message.</summary>
    public string LastError { get; }

    /// <summary>When the first attempt failed.</summary>
    public DateTimeOffset Since { get; }

    /// <summary>The event, its attempts and the last failure, for logs.</summary>
    /// <returns>For example <c>"public"."orders" at 42/1 after 3 attempts: InvalidOperationException: boom</c>.</returns>
    public override string ToString() => $"{Table} at {Position}/{EventId} after {Attempts} attempts: {LastError}";
}
