using System.Data;
using System.Globalization;
using Npgsql;

namespace PgEvents;

/// <summary>
/// One consumer's snapshots in the <c>snapshots</c> table, and the chunk transactions that write
/// them into the log (<c>sql/008_snapshots.sql</c> explains how a chunk keeps commit order).
/// </summary>
internal sealed class SnapshotStore(SchemaSettings settings, string consumer)
{
    private const string UndefinedTable = "42P01";

    private readonly string _requestSql =
        $"SELECT {settings.Schema}.request_snapshot(@consumer, @table::regclass, @reason)";

    private readonly string _pendingSql =
        $"""
        SELECT relation::bigint, schema_name, table_name, chunks, rows_estimated, last_position
          FROM {settings.Qualify("snapshots")}
         WHERE consumer = @consumer AND completed_at IS NULL
         ORDER BY requested_at, relation
         LIMIT 1
        """;

    private readonly string _chunkSql =
        $"""
        SELECT set_config('lock_timeout', @lock_timeout, true);
        SELECT chunk_position, rows_read, rows_written, completed FROM {settings.Schema}.snapshot_chunk(@consumer, @relation::bigint::oid, @rows)
        """;

    private readonly string _failSql =
        $"UPDATE {settings.Qualify("snapshots")} SET completed_at = now(), error = @error WHERE consumer = @consumer AND relation = @relation::bigint::oid";

    private readonly string _listSql =
        $"""
        SELECT schema_name, table_name, reason, requested_at, rows_read, rows_estimated, chunks, last_position, completed_at, error
          FROM {settings.Qualify("snapshots")}
         WHERE consumer = @consumer
         ORDER BY requested_at, relation
        """;

    /// <summary>
    /// Records a snapshot of <paramref name="table"/>: an initial one only if this consumer never had
    /// one of it, a requested one always (starting over a running one). True when one starts.
    /// </summary>
    public async Task<bool> RequestAsync(NpgsqlConnection connection, TableName table, bool initial, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_requestSql, connection);
        command.Parameters.AddWithValue("consumer", consumer);
        command.Parameters.AddWithValue("table", table.ToString());
        command.Parameters.AddWithValue("reason", initial ? "initial" : "requested");
        try
        {
            return (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        }
        catch (PostgresException e) when (e.SqlState == UndefinedTable)
        {
            throw new PgEventsException($"PgEvents consumer '{consumer}' cannot snapshot table {table}: it does not exist.", e);
        }
        catch (PostgresException e) when (e.SqlState == "55000")
        {
            throw new PgEventsException(e.MessageText, e);
        }
    }

    /// <summary>The oldest snapshot with rows left to read, or null.</summary>
    public async Task<PendingSnapshot?> NextPendingAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_pendingSql, connection);
        command.Parameters.AddWithValue("consumer", consumer);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        return new PendingSnapshot(
            (uint)reader.GetInt64(0),
            new TableName(reader.GetString(1), reader.GetString(2)),
            reader.GetInt32(3),
            reader.GetInt64(4),
            reader.IsDBNull(5) ? null : reader.GetInt64(5));
    }

    /// <summary>
    /// Writes the next chunk of at most <paramref name="rows"/> rows in a transaction of its own,
    /// waiting at most <paramref name="lockTimeout"/> for writers in their commit phase.
    /// </summary>
    public async Task<SnapshotChunk> WriteChunkAsync(
        NpgsqlConnection connection, uint relation, int rows, TimeSpan lockTimeout, CancellationToken cancellationToken)
    {
        // READ COMMITTED whatever the database's default: the chunk's read needs a snapshot taken
        // after its wait for the commit phase (the function refuses any other level).
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);
        SnapshotChunk chunk;
        await using (var command = new NpgsqlCommand(_chunkSql, connection, transaction))
        {
            command.Parameters.AddWithValue("lock_timeout", ((long)Math.Ceiling(lockTimeout.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture));
            command.Parameters.AddWithValue("consumer", consumer);
            command.Parameters.AddWithValue("relation", (long)relation);
            command.Parameters.AddWithValue("rows", rows);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            chunk = new SnapshotChunk(
                reader.IsDBNull(0) ? null : reader.GetInt64(0), reader.GetInt32(1), reader.GetInt32(2), reader.GetBoolean(3));
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return chunk;
    }

    /// <summary>Ends a snapshot that can never finish, keeping why.</summary>
    public async Task FailAsync(NpgsqlConnection connection, uint relation, string error, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_failSql, connection);
        command.Parameters.AddWithValue("consumer", consumer);
        command.Parameters.AddWithValue("relation", (long)relation);
        command.Parameters.AddWithValue("error", error);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every snapshot this consumer has had, one per table, oldest request first.</summary>
    public async Task<IReadOnlyList<SnapshotProgress>> ListAsync(NpgsqlConnection connection, long deliveredPosition, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_listSql, connection);
        command.Parameters.AddWithValue("consumer", consumer);
        var result = new List<SnapshotProgress>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            long? last = reader.IsDBNull(7) ? null : reader.GetInt64(7);
            DateTimeOffset? completed = reader.IsDBNull(8) ? null : reader.GetFieldValue<DateTimeOffset>(8);
            var error = reader.IsDBNull(9) ? null : reader.GetString(9);
            result.Add(new SnapshotProgress(
                new TableName(reader.GetString(0), reader.GetString(1)),
                isInitial: reader.GetString(2) == "initial",
                requestedAt: reader.GetFieldValue<DateTimeOffset>(3),
                rowsRead: reader.GetInt64(4),
                rowsEstimated: reader.GetInt64(5),
                chunks: reader.GetInt32(6),
                lastChunkPosition: last,
                completedAt: completed,
                error: error,
                isDelivered: completed is not null && error is null && (last is null || deliveredPosition >= last)));
        }

        return result;
    }
}
