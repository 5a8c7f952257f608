namespace PgEvents;

/// <summary>
/// A place in the commit-ordered log: the commit position of a transaction and an event id within
/// it. Events are delivered in ascending order of this pair.
/// </summary>
internal readonly record struct LogPosition(long Position, long EventId) : IComparable<LogPosition>
{
    /// <summary>Before the first event ever captured.</summary>
    public static LogPosition Start => default;

    public int CompareTo(LogPosition other)
    {
        var byPosition = Position.CompareTo(other.Position);
        return byPosition != 0 ? byPosition : EventId.CompareTo(other.EventId);
    }

    public static bool operator <(LogPosition left, LogPosition right) => left.CompareTo(right) < 0;

    public static bool operator >(LogPosition left, LogPosition right) => left.CompareTo(right) > 0;

    public static bool operator <=(LogPosition left, LogPosition right) => left.CompareTo(right) <= 0;

    public static bool operator >=(LogPosition left, LogPosition right) => left.CompareTo(right) >= 0;

    public override string ToString() => $"{Position}/{EventId}";
}
