namespace PgEvents;

/// <summary>What one chunk transaction wrote: its position (null when the snapshot was already complete), and how many rows it read and wrote.</summary>
/// <remarks>Rows read but not written were changed by a transaction committed after the chunk's position; they arrive through its events.</remarks>
internal readonly record struct SnapshotChunk(long? Position, int RowsRead, int RowsWritten, bool Completed);
