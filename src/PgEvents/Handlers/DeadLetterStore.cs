using Npgsql;

namespace PgEvents;

/// <summary>Reads and writes the dead-letter table of one consumer.</summary>
internal sealed class DeadLetterStore(SchemaSettings settings, string consumerName)
{
    private const string Columns =
        "id, consumer, position, event_id, xid::text, schema_name, table_name, operation, row_data::text, old_row_data::text, " +
        "captured_at, committed_at, attempts, error, dead_lettered_at";

    public async Task AddAsync(
        NpgsqlConnection connection, NpgsqlTransaction transaction, CapturedEvent captured, int attempts, string error, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"""
            INSERT INTO {settings.Qualify("dead_letters")}
                (consumer, position, event_id, xid, schema_name, table_name, operation, row_data, old_row_data, captured_at, committed_at, attempts, error)
            VALUES (@consumer, @position, @event_id, @xid::xid8, @schema, @table, @operation, @row::jsonb, @old_row::jsonb, @captured_at, @committed_at, @attempts, @error)
            ON CONFLICT (consumer, position, event_id) DO UPDATE SET attempts = EXCLUDED.attempts, error = EXCLUDED.error, dead_lettered_at = now()
            """, connection, transaction);
        command.Parameters.AddWithValue("consumer", consumerName);
        command.Parameters.AddWithValue("position", captured.Position);
        command.Parameters.AddWithValue("event_id", captured.EventId);
        command.Parameters.AddWithValue("xid", captured.TransactionId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        command.Parameters.AddWithValue("schema", captured.Schema);
        command.Parameters.AddWithValue("table", captured.Table);
        command.Parameters.AddWithValue("operation", captured.Kind.ToString().ToUpperInvariant());
        command.Parameters.AddWithValue("row", (object?)captured.RowJson ?? DBNull.Value);
        command.Parameters.AddWithValue("old_row", (object?)captured.OldRowJson ?? DBNull.Value);
        command.Parameters.AddWithValue("captured_at", captured.CapturedAt);
        command.Parameters.AddWithValue("committed_at", captured.CommittedAt);
        command.Parameters.AddWithValue("attempts", attempts);
        command.Parameters.AddWithValue("error", error);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<(DeadLetter Letter, CapturedEvent Event)>> ListAsync(
        NpgsqlConnection connection, long? id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT {Columns} FROM {settings.Qualify("dead_letters")} WHERE consumer = @consumer AND (@id::bigint IS NULL OR id = @id) ORDER BY position, event_id",
            connection);
        command.Parameters.AddWithValue("consumer", consumerName);
        command.Parameters.Add(new NpgsqlParameter<long?>("id", NpgsqlTypes.NpgsqlDbType.Bigint) { TypedValue = id });
        var letters = new List<(DeadLetter, CapturedEvent)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var captured = new CapturedEvent(
                Position: reader.GetInt64(2),
                EventId: reader.GetInt64(3),
                TransactionId: ulong.Parse(reader.GetString(4), System.Globalization.CultureInfo.InvariantCulture),
                Schema: reader.GetString(5),
                Table: reader.GetString(6),
                Kind: ChangeLogReader.ParseKind(reader.GetString(7)),
                RowJson: reader.IsDBNull(8) ? null : reader.GetString(8),
                OldRowJson: reader.IsDBNull(9) ? null : reader.GetString(9),
                CapturedAt: reader.GetFieldValue<DateTimeOffset>(10),
                CommittedAt: reader.GetFieldValue<DateTimeOffset>(11));
            letters.Add((new DeadLetter(
                reader.GetInt64(0), reader.GetString(1), captured.Position, captured.EventId, captured.TableName, captured.Kind,
                captured.RowJson, reader.GetInt32(12), reader.GetString(13), reader.GetFieldValue<DateTimeOffset>(14)), captured));
        }

        return letters;
    }

    public async Task DeleteAsync(NpgsqlConnection connection, long id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"DELETE FROM {settings.Qualify("dead_letters")} WHERE consumer = @consumer AND id = @id", connection);
        command.Parameters.AddWithValue("consumer", consumerName);
        command.Parameters.AddWithValue("id", id);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task RecordFailedReplayAsync(NpgsqlConnection connection, long id, string error, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"UPDATE {settings.Qualify("dead_letters")} SET attempts = attempts + 1, error = @error WHERE consumer = @consumer AND id = @id",
            connection);
        command.Parameters.AddWithValue("consumer", consumerName);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("error", error);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
