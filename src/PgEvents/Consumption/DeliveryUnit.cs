namespace PgEvents;

/// <summary>
/// What the consumer delivers, retries and moves its cursor past as one: a single event, or, when
/// batch handlers are registered, every event of one read of the log.
/// </summary>
internal sealed class DeliveryUnit
{
    public DeliveryUnit(IReadOnlyList<CapturedEvent> events, bool endsTransaction)
    {
        ArgumentOutOfRangeException.ThrowIfZero(events.Count);
        Events = events;
        EndsTransaction = endsTransaction;
    }

    public IReadOnlyList<CapturedEvent> Events { get; }

    /// <summary>Whether the last event is the last of its source transaction.</summary>
    public bool EndsTransaction { get; }

    public CapturedEvent First => Events[0];

    public CapturedEvent Last => Events[^1];

    public int Count => Events.Count;

    /// <summary>A unit of one event. A lone event's transaction end is unknown; no batch handler relies on it.</summary>
    public static DeliveryUnit Of(CapturedEvent captured, bool endsTransaction = false) => new([captured], endsTransaction);

    /// <summary>For logs and statuses: <c>5/12</c>, or <c>5/12..9/3 (40 events)</c>.</summary>
    public override string ToString() =>
        Count == 1 ? First.LogPosition.ToString() : $"{First.LogPosition}..{Last.LogPosition} ({Count} events)";
}
