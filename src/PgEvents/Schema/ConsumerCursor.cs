namespace PgEvents;

/// <summary>A registered consumer and its saved cursor, as listed by <see cref="PgEventsSchema.GetConsumersAsync"/>.</summary>
public sealed class ConsumerCursor
{
    internal ConsumerCursor(string name, long position, long eventId, DateTimeOffset registeredAt, DateTimeOffset updatedAt)
    {
        ConsumerName = name;
        Position = position;
        EventId = eventId;
        RegisteredAt = registeredAt;
        UpdatedAt = updatedAt;
    }

    /// <summary>The consumer name.</summary>
    public string ConsumerName { get; }

    /// <summary>The commit position of the last delivered event; 0 before the first.</summary>
    public long Position { get; }

    /// <summary>
    /// The event id of the last delivered event within <see cref="Position"/>; <see cref="long.MaxValue"/>
    /// when the cursor passed that transaction as a whole (a reset, or a transaction with nothing for
    /// this consumer).
    /// </summary>
    public long EventId { get; }

    /// <summary>When the consumer first started, or its cursor was first reset.</summary>
    public DateTimeOffset RegisteredAt { get; }

    /// <summary>
    /// When the cursor last moved (saved after delivering or passing events, or reset). A consumer with
    /// nothing to deliver does not save it, so an old time means a stopped consumer or quiet tables.
    /// </summary>
    public DateTimeOffset UpdatedAt { get; }

    /// <summary>The consumer and where its cursor stands, for logs.</summary>
    /// <returns>For example <c>orders-sync at 42/3</c>.</returns>
    public override string ToString() => $"{ConsumerName} at {Position}/{EventId}";
}
