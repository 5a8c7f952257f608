using System.Globalization;
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
internal sealed class CommitPhase(SchemaSettings settings, TimeProvider time)
{
    private const string PostgresLockTimeout = "55P03";

    private const string HolderFilter =
        """
        locktype = 'advisory' AND objsubid = 1 AND mode = 'ExclusiveLock' AND granted
           AND classid = @class::oid
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """;

    private readonly string _holdersSql = $"SELECT objid::bigint FROM pg_locks WHERE {HolderFilter}";

    private readonly string _stillRunningSql =
        $"SELECT objid::bigint FROM pg_locks WHERE {HolderFilter} AND objid::bigint = ANY(@holders)";

    // The shared lock is released in the very statement that obtained it: a holder that rolled back
    // the savepoint that took its key is still running and may ask for the key again, and the reader
    // must never hold it then (that would fail the holder's lock_timeout, or close a deadlock with a
    // transaction the reader waits for next). The reader holds nothing while it waits.
    private readonly string _waitSql =
        """
        SELECT set_config('lock_timeout', @timeout, true);
        SELECT pg_advisory_lock_shared((@class::bigint << 32) | @holder), pg_advisory_unlock_shared((@class::bigint << 32) | @holder)
        """;

    /// <summary>Every transaction in its commit phase now.</summary>
    public Task<IReadOnlyList<uint>> HoldersAsync(NpgsqlConnection connection, CancellationToken cancellationToken) =>
        QueryAsync(connection, _holdersSql, holders: null, cancellationToken);

    /// <summary>Those of <paramref name="holders"/> whose commit phase has not ended yet.</summary>
    public Task<IReadOnlyList<uint>> StillRunningAsync(NpgsqlConnection connection, IReadOnlyList<uint> holders, CancellationToken cancellationToken) =>
        QueryAsync(connection, _stillRunningSql, holders, cancellationToken);

    /// <summary>
    /// Waits, for at most <paramref name="timeout"/>, until every one of <paramref name="holders"/>
    /// has released its commit lock: a lock wait is the signal, so the reader reacts the moment the
    /// last one commits or aborts. Returning says nothing about the outcome (a holder may even have
    /// taken its lock again); the caller checks with <see cref="StillRunningAsync"/> before it relies on it.
    /// </summary>
    public async Task WaitAsync(NpgsqlConnection connection, IReadOnlyList<uint> holders, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        foreach (var holder in holders)
        {
            var remaining = timeout - time.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero || !await WaitForOneAsync(connection, holder, remaining, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    /// <summary>Waits for one holder; false when it still runs after <paramref name="timeout"/>.</summary>
    private async Task<bool> WaitForOneAsync(NpgsqlConnection connection, uint holder, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // A transaction only scopes lock_timeout; the advisory lock itself is session-level and
        // released by the same statement.
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(_waitSql, connection, transaction);
        command.Parameters.AddWithValue("timeout", Math.Max(1, (long)Math.Ceiling(timeout.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue("class", settings.CommitLockClass);
        command.Parameters.AddWithValue("holder", (long)holder);
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (PostgresException e) when (!cancellationToken.IsCancellationRequested && e.SqlState == PostgresLockTimeout)
        {
            await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
            return false;
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
