using Npgsql;

namespace PgEvents;

/// <summary>
/// Settings of the consumer's own working sessions (delivery, snapshot chunks). Their writes are safe
/// to lose in a server crash: cursors, dead letters and handler writes are redone when the events are
/// delivered again, and a chunk is lost together with its progress row; so commits do not wait for
/// the WAL flush. Their statements are written for READ COMMITTED: under a database default of
/// SERIALIZABLE, reads, cursor saves and subscriptions failed with serialization errors against the
/// writers. (A startup option would not pass PgBouncer, which refuses unknown startup parameters.)
/// </summary>
internal static class WorkingSession
{
    public static async Task ConfigureAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SET synchronous_commit = off; SET default_transaction_isolation = 'read committed'", connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
