using Npgsql;

namespace PgEvents;

/// <summary>
/// A connection from <see cref="SessionConnections"/>. Disposing a pooled one first releases the
/// session's locks and listens and resets its settings: the working session turns off synchronous
/// commit, which must not reach the host's own transactions on a source configured with
/// <c>No Reset On Close</c>.
/// </summary>
internal sealed class SessionConnection(NpgsqlConnection connection, bool pooled) : IAsyncDisposable
{
    // Long enough for a healthy server, short enough not to hold up a stopping host.
    private static readonly TimeSpan EndSessionTimeout = TimeSpan.FromSeconds(5);

    public NpgsqlConnection Connection => connection;

    public async ValueTask DisposeAsync()
    {
        if (pooled && connection.State == System.Data.ConnectionState.Open)
        {
            await EndSessionAsync().ConfigureAwait(false);
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    private async Task EndSessionAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(EndSessionTimeout);
            await using var end = new NpgsqlCommand("SELECT pg_advisory_unlock_all(); UNLISTEN *; RESET ALL", connection);
            await end.ExecuteNonQueryAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException)
        {
            // The session could not be ended (an aborted transaction, a lost server): the pool must
            // not keep it. Clearing the pool makes this connection close for real when disposed.
            NpgsqlConnection.ClearPool(connection);
        }
    }
}
