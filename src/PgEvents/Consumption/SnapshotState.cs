using System.Globalization;

namespace PgEvents;

/// <summary>The parts of a PostgreSQL snapshot (<c>pg_current_snapshot()</c>) the reader needs.</summary>
internal sealed class SnapshotState(ulong xmin, ulong xmax, IReadOnlyCollection<ulong> inProgress)
{
    public static SnapshotState Empty { get; } = new(0, 0, []);

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

    /// <summary>Parses the text form of <c>pg_snapshot</c>: <c>xmin:xmax:xip,xip,…</c>.</summary>
    public static SnapshotState Parse(string text)
    {
        var parts = text.Split(':');
        if (parts.Length != 3)
        {
            throw new FormatException($"'{text}' is not a pg_snapshot.");
        }

        var inProgress = parts[2].Length == 0
            ? new HashSet<ulong>()
            : parts[2].Split(',').Select(x => ulong.Parse(x, NumberStyles.None, CultureInfo.InvariantCulture)).ToHashSet();
        return new SnapshotState(
            ulong.Parse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture),
            ulong.Parse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture),
            inProgress);
    }
}
