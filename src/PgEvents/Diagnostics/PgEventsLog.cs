using Microsoft.Extensions.Logging;

namespace PgEvents;

/// <summary>Every log message PgEvents writes, source-generated.</summary>
internal static partial class PgEventsLog
{
    [LoggerMessage(1, LogLevel.Information, "PgEvents applied schema script {Script} to schema {Schema}")]
    public static partial void SchemaScriptApplied(ILogger logger, string schema, string script);

    [LoggerMessage(2, LogLevel.Information, "PgEvents is now capturing changes of table {Table}")]
    public static partial void TableTracked(ILogger logger, TableName table);

    [LoggerMessage(3, LogLevel.Information, "PgEvents stopped capturing changes of table {Table}")]
    public static partial void TableUntracked(ILogger logger, TableName table);

    [LoggerMessage(4, LogLevel.Debug, "PgEvents reader saw a hole at positions {From}..{To}; {Count} transactions are in their commit phase and may still fill it")]
    public static partial void HoleObserved(ILogger logger, long from, long to, int count);

    [LoggerMessage(5, LogLevel.Debug, "PgEvents reader passed over positions {From}..{To}: no transaction that took them can commit any more, or they hold nothing for this consumer (rolled back after taking a position, burnt by a server restart, or another consumer's snapshot chunks)")]
    public static partial void HoleSkipped(ILogger logger, long from, long to);

    [LoggerMessage(10, LogLevel.Information, "PgEvents consumer {Consumer} started at position {Cursor}")]
    public static partial void ConsumerStarted(ILogger logger, string consumer, LogPosition cursor);

    [LoggerMessage(11, LogLevel.Information, "PgEvents consumer {Consumer} stopped at position {Cursor}")]
    public static partial void ConsumerStopped(ILogger logger, string consumer, LogPosition cursor);

    [LoggerMessage(12, LogLevel.Error, "PgEvents consumer {Consumer} failed to handle {Kind} of {Table} at position {Position}/{EventId} (attempt {Attempt}); retrying in {Delay}")]
    public static partial void DeliveryFailed(ILogger logger, Exception exception, string consumer, ChangeKind kind, TableName table, long position, long eventId, int attempt, TimeSpan delay);

    [LoggerMessage(13, LogLevel.Information, "PgEvents consumer {Consumer} delivered {Table} at position {Position}/{EventId} after {Attempts} failed attempts; delivery resumes")]
    public static partial void DeliveryRecovered(ILogger logger, string consumer, TableName table, long position, long eventId, int attempts);

    [LoggerMessage(14, LogLevel.Warning, "PgEvents consumer {Consumer} skipped an event of unmapped table {Table} at position {Position}/{EventId} (UnmappedTablePolicy.Skip)")]
    public static partial void UnmappedTableSkipped(ILogger logger, string consumer, TableName table, long position, long eventId);

    [LoggerMessage(15, LogLevel.Warning, "PgEvents consumer {Consumer} lost its database connection; reconnecting in {Delay}")]
    public static partial void ConnectionLost(ILogger logger, Exception exception, string consumer, TimeSpan delay);

    [LoggerMessage(16, LogLevel.Information, "PgEvents consumer {Consumer} reconnected and resumes at position {Cursor}")]
    public static partial void Reconnected(ILogger logger, string consumer, LogPosition cursor);

    [LoggerMessage(17, LogLevel.Information, "PgEvents consumer {Consumer} is on standby: another instance holds its lease")]
    public static partial void Standby(ILogger logger, string consumer);

    [LoggerMessage(18, LogLevel.Warning, "PgEvents consumer {Consumer} took over: the previous active instance is gone")]
    public static partial void TookOver(ILogger logger, string consumer);

    [LoggerMessage(19, LogLevel.Information, "PgEvents retention deleted {Count} events older than {Age} that every consumer had passed (run by {Consumer})")]
    public static partial void Purged(ILogger logger, string consumer, long count, TimeSpan age);

    [LoggerMessage(20, LogLevel.Error, "PgEvents consumer {Consumer} dead-lettered the event of {Table} at position {Position}/{EventId} after {Attempts} attempts and continues")]
    public static partial void DeadLettered(ILogger logger, Exception exception, string consumer, TableName table, long position, long eventId, int attempts);

    [LoggerMessage(21, LogLevel.Warning, "PgEvents consumer {Consumer} cursor was reset to {Cursor}; delivery continues from there")]
    public static partial void CursorReset(ILogger logger, string consumer, LogPosition cursor);

    [LoggerMessage(22, LogLevel.Warning, "PgEvents consumer {Consumer} cursor reset to {Cursor} requested")]
    public static partial void CursorResetRequested(ILogger logger, string consumer, LogPosition cursor);

    [LoggerMessage(23, LogLevel.Debug, "PgEvents consumer {Consumer} could not measure its lag; the gauges keep the previous value")]
    public static partial void LagSampleFailed(ILogger logger, Exception exception, string consumer);

    [LoggerMessage(24, LogLevel.Error, "PgEvents consumer {Consumer} cannot run: SQLSTATE {SqlState}: {Reason}. Reconnecting does not cure this; it needs a fix (privileges, schema, connection settings). Retrying in {Delay}")]
    public static partial void NonTransientFailure(ILogger logger, Exception exception, string consumer, string sqlState, string reason, TimeSpan delay);

    [LoggerMessage(26, LogLevel.Warning, "PgEvents consumer {Consumer} could not run a retention pass; delivery goes on and the next pass runs in {Delay}")]
    public static partial void RetentionFailed(ILogger logger, Exception exception, string consumer, TimeSpan delay);

    [LoggerMessage(25, LogLevel.Information, "PgEvents consumer {Consumer} runs again; the error that kept it from running is gone")]
    public static partial void FaultCleared(ILogger logger, string consumer);

    [LoggerMessage(27, LogLevel.Error, "PgEvents consumer {Consumer} failed to handle the batch {Batch} (attempt {Attempt}); retrying the whole batch in {Delay}")]
    public static partial void BatchDeliveryFailed(ILogger logger, Exception exception, string consumer, string batch, int attempt, TimeSpan delay);

    [LoggerMessage(28, LogLevel.Warning, "PgEvents consumer {Consumer} gave up on the batch {Batch} after {Attempts} attempts; delivering its events one by one so that only the failing ones are dead-lettered")]
    public static partial void BatchIsolating(ILogger logger, Exception exception, string consumer, string batch, int attempts);

    [LoggerMessage(29, LogLevel.Information, "PgEvents consumer {Consumer} snapshots table {Table} (about {Estimated} rows)")]
    public static partial void SnapshotStarted(ILogger logger, string consumer, TableName table, long estimated);

    [LoggerMessage(30, LogLevel.Debug, "PgEvents consumer {Consumer} wrote a snapshot chunk of {Table} at position {Position}: {Read} rows read, {Written} written")]
    public static partial void SnapshotChunkWritten(ILogger logger, string consumer, TableName table, long? position, int read, int written);

    [LoggerMessage(31, LogLevel.Information, "PgEvents consumer {Consumer} read the last rows of its snapshot of {Table} ({Chunks} chunks)")]
    public static partial void SnapshotCompleted(ILogger logger, string consumer, TableName table, int chunks);

    [LoggerMessage(32, LogLevel.Warning, "PgEvents consumer {Consumer} could not write a snapshot chunk; delivery goes on and the snapshot resumes in {Delay}")]
    public static partial void SnapshotChunkFailed(ILogger logger, Exception exception, string consumer, TimeSpan delay);

    [LoggerMessage(33, LogLevel.Error, "PgEvents consumer {Consumer} ended its snapshot of {Table} before reading every row: {Reason}")]
    public static partial void SnapshotAbandoned(ILogger logger, string consumer, TableName table, string reason);

    [LoggerMessage(34, LogLevel.Information, "PgEvents consumer {Consumer} was asked to snapshot table {Table}")]
    public static partial void SnapshotRequested(ILogger logger, string consumer, TableName table);
}
