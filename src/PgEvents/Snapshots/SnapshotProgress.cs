namespace PgEvents;

/// <summary>Where one snapshot of one table stands for one consumer (see <see cref="ChangeKind.Snapshot"/>).</summary>
public sealed class SnapshotProgress
{
    internal SnapshotProgress(
        TableName table,
        bool isInitial,
        DateTimeOffset requestedAt,
        long rowsRead,
        long rowsEstimated,
        int chunks,
        long? lastChunkPosition,
        DateTimeOffset? completedAt,
        string? error,
        bool isDelivered)
    {
        Table = table;
        IsInitial = isInitial;
        RequestedAt = requestedAt;
        RowsRead = rowsRead;
        RowsEstimated = rowsEstimated;
        Chunks = chunks;
        LastChunkPosition = lastChunkPosition;
        CompletedAt = completedAt;
        Error = error;
        IsDelivered = isDelivered;
    }

    /// <summary>The table, under its name when the snapshot last read it.</summary>
    public TableName Table { get; }

    /// <summary>Whether this is the initial snapshot (<see cref="PgEventsOptions.InitialSnapshot"/>) rather than a requested one.</summary>
    public bool IsInitial { get; }

    /// <summary>When the snapshot was requested (or started over).</summary>
    public DateTimeOffset RequestedAt { get; }

    /// <summary>Rows read into the log so far.</summary>
    public long RowsRead { get; }

    /// <summary>PostgreSQL's estimate of the table's rows when the snapshot was requested (0 before the table was ever analyzed).</summary>
    public long RowsEstimated { get; }

    /// <summary>Chunks written so far.</summary>
    public int Chunks { get; }

    /// <summary>The log position of the last chunk written, or null before the first.</summary>
    public long? LastChunkPosition { get; }

    /// <summary>When the last chunk was written, or null while the snapshot runs.</summary>
    public DateTimeOffset? CompletedAt { get; }

    /// <summary>Why the snapshot ended before reading every row (its table was dropped or lost its primary key), or null.</summary>
    public string? Error { get; }

    /// <summary>Whether every row was read.</summary>
    public bool IsCompleted => CompletedAt is not null && Error is null;

    /// <summary>Whether the snapshot is complete and the consumer has delivered its last chunk.</summary>
    public bool IsDelivered { get; }

    /// <inheritdoc />
    public override string ToString() =>
        Error is not null ? $"{Table}: ended, {Error}"
        : IsDelivered ? $"{Table}: {RowsRead} rows delivered"
        : IsCompleted ? $"{Table}: {RowsRead} rows read, delivering"
        : $"{Table}: {RowsRead} of about {RowsEstimated} rows read";
}
