namespace PgEvents;

/// <summary>
/// Positions <see cref="From"/>..<see cref="To"/> were missing from a read that already showed a
/// later position. Each was taken before that later one, so whoever took it had announced itself
/// (see <see cref="CommitPhase"/>) before the read: right after the read it was either one of
/// <see cref="Holders"/> or had already ended. <see cref="Holders"/> shrinks as holders end, and a
/// position still missing from a read made after the last of them ended can never appear.
/// </summary>
/// <param name="From">First missing position.</param>
/// <param name="To">Last missing position.</param>
/// <param name="Holders">
/// Transactions (32-bit xids) that were in their commit phase when the hole was seen and had not
/// ended at the last check, which always precedes the read that relies on it.
/// </param>
internal sealed record PositionHole(long From, long To, IReadOnlyList<uint> Holders)
{
    public bool Covers(long from, long to) => From <= from && to <= To;

    /// <summary>No transaction that could still commit one of these positions was running.</summary>
    public bool IsAbandoned => Holders.Count == 0;
}
