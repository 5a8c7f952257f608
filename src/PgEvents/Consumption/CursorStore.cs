using Npgsql;

namespace PgEvents;

/// <summary>Loads and saves a consumer's cursor row.</summary>
internal sealed class CursorStore(SchemaSettings settings, string consumerName)
{
    private readonly string _loadSql =
        $"INSERT INTO {settings.Qualify("consumers")} (name) VALUES (@name) ON CONFLICT (name) DO NOTHING; " +
        $"SELECT position, event_id FROM {settings.Qualify("consumers")} WHERE name = @name";

    private readonly string _saveSql =
        $"UPDATE {settings.Qualify("consumers")} SET position = @position, event_id = @event_id, updated_at = now() WHERE name = @name";

    public string ConsumerName { get; } = consumerName;

    public async Task<LogPosition> LoadAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_loadSql, connection);
        command.Parameters.AddWithValue("name", ConsumerName);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new LogPosition(reader.GetInt64(0), reader.GetInt64(1));
    }

    public async Task SaveAsync(NpgsqlConnection connection, LogPosition position, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_saveSql, connection, transaction);
        command.Parameters.AddWithValue("name", ConsumerName);
        command.Parameters.AddWithValue("position", position.Position);
        command.Parameters.AddWithValue("event_id", position.EventId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
