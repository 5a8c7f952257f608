using Npgsql;

namespace PgEvents;

/// <summary>
/// Opens the connections whose session state matters: the consumer's working connection (its
/// lease), its LISTEN connection and its snapshot writer. PgEvents' own session data source is
/// unpooled, so closing such a connection ends its backend and PostgreSQL drops the session's
/// advisory locks and listens with it. A data source the host supplies is usually pooled: Npgsql
/// returns a closed connection to its pool as it is and resets it only on its next use (or never,
/// with <c>No Reset On Close</c>), so an idle backend would keep holding the lease and every other
/// instance would wait on standby meanwhile. For such a source the session is ended by hand before
/// the connection goes back (see <see cref="SessionConnection"/>).
/// </summary>
internal sealed class SessionConnections(NpgsqlDataSource source, bool pooled)
{
    /// <summary>Where the connections come from; also the source of the session check's probes.</summary>
    public NpgsqlDataSource Source => source;

    public async Task<SessionConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = await source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        if (!pooled)
        {
            return new SessionConnection(connection, restore: null);
        }

        try
        {
            return new SessionConnection(connection, await SessionConnection.ReadRestorableAsync(connection, cancellationToken).ConfigureAwait(false));
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
