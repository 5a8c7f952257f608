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

    [LoggerMessage(4, LogLevel.Debug, "PgEvents reader saw a hole at positions {From}..{To}; waiting for {Count} in-progress transactions to finish")]
    public static partial void HoleObserved(ILogger logger, long from, long to, int count);

    [LoggerMessage(5, LogLevel.Information, "PgEvents reader skipped positions {From}..{To}: their transactions rolled back after taking a position")]
    public static partial void HoleSkipped(ILogger logger, long from, long to);
}
