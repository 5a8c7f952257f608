namespace PgEvents;

/// <summary>The parts of a PostgreSQL snapshot (<c>pg_current_snapshot()</c>) the reader needs.</summary>
internal sealed class SnapshotState(ulong xmin, ulong xmax, IReadOnlyCollection<ulong> inProgress)
{
    public ulong Xmin { get; } = xmin;

    public ulong Xmax { get; } = xmax;

    /// <summary>Transaction ids still running when the snapshot was taken (<c>xip</c>).</summary>
    public IReadOnlyCollection<ulong> InProgress { get; } = inProgress;

    /// <summary>
    /// Whether the transaction had ended (committed or aborted) as seen by this snapshot. This is
    /// stricter than <c>pg_xact_status</c>: a transaction may be committed in the commit log yet
    /// still running for snapshots, and only the snapshot decides what a query can see.
    /// </summary>
    public bool HasFinished(ulong xid) =>
        xid < Xmin || (xid < Xmax && !InProgress.Contains(xid));
}
