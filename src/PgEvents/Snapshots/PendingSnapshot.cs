namespace PgEvents;

/// <summary>A snapshot that has rows left to read: its table (by oid and current name) and how far it got.</summary>
internal sealed record PendingSnapshot(uint Relation, TableName Table, int Chunks, long RowsEstimated, long? LastChunkPosition);
