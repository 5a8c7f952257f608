using Npgsql;

namespace PgEvents;

/// <summary>
/// Sees which transactions are in their commit phase. The position trigger takes a
/// transaction-level advisory lock keyed by <see cref="SchemaSettings.CommitLockClass"/> and the
/// transaction's xid before it calls <c>nextval</c>; PostgreSQL releases it only once the commit is
/// visible to new snapshots, or the transaction (or the savepoint that took it) has rolled back.
/// So the lock's holders are exactly the transactions that may still make a missing position
/// appear: an open transaction that has not reached its commit holds none and is never waited for,
/// whatever it wrote, and so is a transaction connected to another database (advisory locks are
/// per database).
/// </summary>
internal sealed class CommitPhase(SchemaSettings settings)
{
    private const string PostgresLockTimeout = "55P03";
    private const string PostgresQueryCanceled = "57014";

    private const string HolderFilter =
        """
        locktype = 'advisory' AND objsubid = 1 AND mode = 'ExclusiveLock' AND granted
           AND classid = @class::oid
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """;

    private readonly string _holdersSql = $"SELECT objid::bigint FROM pg_locks WHERE {HolderFilter}";

    private readonly string _stillRunningSql =
        $"SELECT objid::bigint FROM pg_locks WHERE {HolderFilter} AND objid::bigint = ANY(@holders)";

    // One statement waits for every holder in turn; statement_timeout bounds the whole wait.
    private readonly string _waitSql =
        """
        SELECT set_config('statement_timeout', @timeout, true);
        SELECT count(pg_advisory_xact_lock_shared((@class::bigint << 32) | h)) FROM unnest(@holders) AS h
        """;

    /// <summary>Every transaction in its commit phase now.</summary>
    public Task<IReadOnlyList<uint>> HoldersAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        QueryAsync(connection, _holdersSql, holders: null, cancellationToken);

    /// <summary>Those of <paramref name="holders"/> whose commit phase has not ended yet.</summary>
    public Task<IReadOnlyList<uint>> StillRunningAsync(NpgsqlConnection connection, IReadOnlyList<uint> holders, CancellationToken cancellationToken) =>
        QueryAsync(connection, _stillRunningSql, holders, cancellationToken);

    /// <summary>
    /// Waits, for at most <paramref name="timeout"/>, until every one of <paramref name="holders"/>
    /// has ended: a lock wait is the signal, so the reader reacts the moment the last one commits or
    /// aborts. Returning says nothing about the outcome; the caller checks with
    /// <see cref="StillRunningAsync"/> before it relies on it.
    /// </summary>
    public async Task WaitAsync(NpgsqlConnection connection, IReadOnlyList<uint> holders, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (holders.Count == 0)
        {
            return;
        }

        // The shared locks taken to wait are transaction-level: committing the wait releases them.
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(_waitSql, connection, transaction);
        command.Parameters.AddWithValue("timeout", Math.Max(1, (long)timeout.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue("class", settings.CommitLockClass);
        command.Parameters.AddWithValue("holders", holders.Select(h => (long)h).ToArray());
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (!cancellationToken.IsCancellationRequested
                                          && e.SqlState is PostgresQueryCanceled or PostgresLockTimeout)
        {
            // Still running after the timeout: the caller reads again and waits again.
            await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<IReadOnlyList<uint>> QueryAsync(
        NpgsqlConnection connection, string sql, IReadOnlyList<uint>? holders, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("class", settings.CommitLockClass);
        if (holders is not null)
        {
            command.Parameters.AddWithValue("holders", holders.Select(h => (long)h).ToArray());
        }

        var result = new List<uint>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add((uint)reader.GetInt64(0));
        }

        return result;
    }
}
