using Npgsql;

namespace PgEvents;

/// <summary>
/// Deletes the oldest part of the log: transactions (and their events) below every registered
/// consumer's cursor that committed longer ago than the retention age. Works from the bottom of the
/// position index in bounded batches and stops at the first transaction still too young, so a pass
/// costs what it deletes. One pass at a time per schema (transaction-scoped advisory lock).
/// </summary>
internal sealed class LogRetention(SchemaSettings settings)
{
    private readonly int _lockKey = SchemaSettings.DeriveKey("retention", settings.SchemaName);

    private readonly string _purgeSql =
        $"""
        WITH bound AS (
            SELECT coalesce(min(position), 0) AS min_cursor FROM {settings.Qualify("consumers")}
        ), candidates AS (
            SELECT t.xid, t.position, t.committed_at
              FROM {settings.Qualify("transactions")} t, bound
             WHERE t.position < bound.min_cursor
             ORDER BY t.position
             LIMIT @batch
        ), first_young AS (
            SELECT min(position) AS position FROM candidates WHERE committed_at >= now() - @age
        ), doomed AS (
            SELECT c.xid, c.position FROM candidates c, first_young f
             WHERE f.position IS NULL OR c.position < f.position
        ), deleted_events AS (
            DELETE FROM {settings.Qualify("events")} e USING doomed d WHERE e.xid = d.xid RETURNING 1
        ), deleted_transactions AS (
            DELETE FROM {settings.Qualify("transactions")} t USING doomed d WHERE t.xid = d.xid RETURNING t.position
        ), horizon AS (
            UPDATE {settings.Qualify("settings")}
               SET purged_through = greatest(purged_through, (SELECT max(position) FROM deleted_transactions))
             WHERE EXISTS (SELECT 1 FROM deleted_transactions)
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM deleted_events), (SELECT count(*) FROM deleted_transactions)
        """;

    /// <summary>Runs up to <paramref name="maxBatches"/> batches; returns the number of events deleted.</summary>
    public async Task<long> PurgeAsync(
        NpgsqlConnection connection, TimeSpan olderThan, int batchSize, int maxBatches, CancellationToken cancellationToken)
    {
        long deletedEvents = 0;
        for (var batch = 0; batch < maxBatches; batch++)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (var lockCommand = new NpgsqlCommand("SELECT pg_try_advisory_xact_lock(@class, @key)", connection, transaction))
            {
                lockCommand.Parameters.AddWithValue("class", SchemaSettings.AdvisoryLockClass);
                lockCommand.Parameters.AddWithValue("key", _lockKey);
                if (!(bool)(await lockCommand.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
                {
                    return deletedEvents;
                }
            }

            long transactions;
            await using (var purge = new NpgsqlCommand(_purgeSql, connection, transaction))
            {
                purge.Parameters.AddWithValue("batch", batchSize);
                purge.Parameters.AddWithValue("age", olderThan);
                await using var reader = await purge.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                deletedEvents += reader.GetInt64(0);
                transactions = reader.GetInt64(1);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            if (transactions < batchSize)
            {
                break;
            }
        }

        return deletedEvents;
    }
}
