namespace PgEvents;

/// <summary>
/// Positions <see cref="From"/>..<see cref="To"/> were missing from a snapshot that already showed a
/// later position. Whatever transaction took one of them was, at that moment, either aborted or one
/// of <see cref="Blockers"/>: it took the position before the later one committed, so it already had
/// a transaction id, and had it committed before the snapshot its position would have been visible.
/// Once every blocker has finished, a position still missing can never appear.
/// </summary>
internal sealed record PositionHole(long From, long To, IReadOnlyList<ulong> Blockers)
{
    public bool Covers(long from, long to) => From <= from && to <= To;

    public bool IsResolvedIn(SnapshotState snapshot) => Blockers.All(snapshot.HasFinished);
}
