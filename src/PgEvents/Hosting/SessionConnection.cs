using Npgsql;

namespace PgEvents;

/// <summary>
/// A connection from <see cref="SessionConnections"/>. Disposing one from a pooled source first
/// releases the session's advisory locks and listens and puts back the settings PgEvents changes
/// (<see cref="WorkingSession"/> turns off synchronous commit, which must not reach the host's own
/// transactions) to the values they had when the connection came out of the pool. Only those: the
/// host's own per-connection settings (a physical connection initializer's <c>search_path</c>, say)
/// stay as they were.
/// </summary>
internal sealed class SessionConnection : IAsyncDisposable
{
    // Long enough for a healthy server, short enough not to hold up a stopping host.
    private static readonly TimeSpan EndSessionTimeout = TimeSpan.FromSeconds(5);

    // Every session setting PgEvents sets with session scope.
    private static readonly string[] Restorable = ["synchronous_commit", "default_transaction_isolation", SessionCheck.Mark];

    private readonly IReadOnlyList<string>? _restore;

    public SessionConnection(NpgsqlConnection connection, IReadOnlyList<string>? restore)
    {
        Connection = connection;
        _restore = restore;
    }

    public NpgsqlConnection Connection { get; }

    /// <summary>Reads the values <see cref="DisposeAsync"/> puts back, in the order of <see cref="Restorable"/>.</summary>
    public static async Task<IReadOnlyList<string>> ReadRestorableAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var read = new NpgsqlCommand("SELECT coalesce(current_setting(name, true), '') FROM unnest(@names) WITH ORDINALITY AS s(name, n) ORDER BY n", connection);
        read.Parameters.AddWithValue("names", Restorable);
        var values = new List<string>(Restorable.Length);
        await using var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }

    public async ValueTask DisposeAsync()
    {
        if (_restore is not null && Connection.State == System.Data.ConnectionState.Open)
        {
            await EndSessionAsync(_restore).ConfigureAwait(false);
        }

        await Connection.DisposeAsync().ConfigureAwait(false);
    }

    private async Task EndSessionAsync(IReadOnlyList<string> restore)
    {
        try
        {
            using var timeout = new CancellationTokenSource(EndSessionTimeout);
            await using var end = new NpgsqlCommand(
                "SELECT pg_advisory_unlock_all(), set_config(name, value, false) FROM unnest(@names, @values) AS s(name, value); UNLISTEN *", Connection);
            end.Parameters.AddWithValue("names", Restorable);
            end.Parameters.AddWithValue("values", restore.ToArray());
            await end.ExecuteNonQueryAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException)
        {
            // The session could not be ended (an aborted transaction, a lost server): the pool must
            // not keep it. Clearing the pool makes this connection close for real when disposed.
            NpgsqlConnection.ClearPool(Connection);
        }
    }
}
