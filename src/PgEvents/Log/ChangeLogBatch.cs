namespace PgEvents;

/// <summary>What one read of the log returned.</summary>
internal sealed class ChangeLogBatch(IReadOnlyList<CapturedEvent> events, PositionHole? waitingOn, bool endsTransaction = true, long? passedThrough = null)
{
    /// <summary>Events safe to deliver, in order, contiguous after the position read from.</summary>
    public IReadOnlyList<CapturedEvent> Events { get; } = events;

    /// <summary>
    /// A gap the reader cannot yet decide on: later events exist but stay undelivered until the
    /// gap fills or the transactions that may still fill it have ended. Nothing is ever skipped because time passed.
    /// </summary>
    public PositionHole? WaitingOn { get; } = waitingOn;

    /// <summary>Whether the last event is the last of its transaction (true when there are none).</summary>
    public bool EndsTransaction { get; } = endsTransaction;

    /// <summary>
    /// The last position after the events (or after the position read from) that holds nothing for
    /// this consumer, when the read ended with such transactions: the cursor may move to its end.
    /// </summary>
    public long? PassedThrough { get; } = passedThrough;
}
