using System.Data;
using Npgsql;

namespace PgEvents;

/// <summary>Sorts the consumer's failures into "reconnect and go on", "needs a fix" and "a bug".</summary>
internal static class FailureClassifier
{
    public static bool IsBroken(NpgsqlConnection connection) =>
        connection.FullState.HasFlag(ConnectionState.Broken) || connection.State == ConnectionState.Closed;

    /// <summary>
    /// Failures the consumer retries after reconnecting: everything that comes from the database or
    /// the network, and PgEvents' own refusals (a connection that is not a session of its own). Any
    /// other exception is a bug and ends the consumer's run.
    /// </summary>
    public static bool IsRetryable(Exception e) =>
        e is NpgsqlException or IOException or TimeoutException or PgEventsException
        || (e is InvalidOperationException && e.InnerException is NpgsqlException);

    /// <summary>
    /// Whether reconnecting alone can cure a failure. Npgsql knows the transient server errors by
    /// SQLSTATE (57P01 admin shutdown, 53300 too many connections, 08006, ...) and treats its own
    /// errors as transient when an I/O error or a timeout caused them. PgBouncer reports its pool and
    /// connection troubles as 08P01, which Npgsql does not list; the whole 08 class is a connection
    /// problem. Everything else (42501 insufficient privilege, 42P01 undefined table, 3D000 no such
    /// database, 28P01 failed login, a PgEvents refusal) needs a fix and is reported as a fault.
    /// 26000 (a prepared statement of this connection does not exist) means the server session behind
    /// the connection was replaced under it, as a pooler that hands out backends per transaction
    /// does: reconnecting, the session check names the real cause.
    /// </summary>
    public static bool IsTransient(Exception e) => e switch
    {
        PostgresException postgres => postgres.IsTransient || postgres.SqlState.StartsWith("08", StringComparison.Ordinal)
            || postgres.SqlState == PostgresErrorCodes.InvalidSqlStatementName,
        NpgsqlException npgsql => npgsql.IsTransient,
        IOException or TimeoutException => true,
        InvalidOperationException { InnerException: { } inner } => IsTransient(inner),
        _ => false,
    };

    /// <summary>How a handler's failure is written into statuses, dead letters and replay records.</summary>
    public static string Describe(Exception e) => $"{e.GetType().Name}: {e.Message}";
}
