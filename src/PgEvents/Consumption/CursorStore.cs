using Npgsql;

namespace PgEvents;

/// <summary>
/// Loads and saves a consumer's cursor row. Saves are fenced by the row's generation: an external
/// reset (replay) bumps it, and a running consumer then reloads instead of overwriting the reset.
/// </summary>
internal sealed class CursorStore(SchemaSettings settings, string consumerName)
{
    private readonly string _loadSql =
        $"""
        INSERT INTO {settings.Qualify("consumers")} (name) VALUES (@name) ON CONFLICT (name) DO NOTHING;
        SELECT c.position, c.event_id, c.generation, s.purged_through
          FROM {settings.Qualify("consumers")} c CROSS JOIN {settings.Qualify("settings")} s
         WHERE c.name = @name
        """;

    private readonly string _saveSql =
        $"UPDATE {settings.Qualify("consumers")} SET position = @position, event_id = @event_id, updated_at = now() " +
        "WHERE name = @name AND generation = @generation";

    private readonly string _resetSql =
        $"INSERT INTO {settings.Qualify("consumers")} (name, position, event_id) VALUES (@name, @position, @event_id) " +
        "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, event_id = EXCLUDED.event_id, " +
        $"generation = {settings.Qualify("consumers")}.generation + 1, updated_at = now()";

    public string ConsumerName { get; } = consumerName;

    /// <summary>The generation the last load saw; saves succeed only while it is current.</summary>
    public long Generation { get; private set; }

    /// <summary>Registers the consumer if needed and returns where it resumes.</summary>
    public async Task<LogPosition> LoadAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_loadSql, connection);
        command.Parameters.AddWithValue("name", ConsumerName);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var position = new LogPosition(reader.GetInt64(0), reader.GetInt64(1));
        Generation = reader.GetInt64(2);
        var purgedThrough = reader.GetInt64(3);

        // Retention deleted everything up to purgedThrough; a consumer behind it (new, or
        // unregistered and back) resumes with the oldest event still kept.
        return position.Position < purgedThrough ? new LogPosition(purgedThrough, long.MaxValue) : position;
    }

    /// <summary>The saved cursor, without registering the consumer; <see cref="LogPosition.Start"/> when it has none.</summary>
    public async Task<LogPosition> PeekAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT position, event_id FROM {settings.Qualify("consumers")} WHERE name = @name", connection);
        command.Parameters.AddWithValue("name", ConsumerName);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new LogPosition(reader.GetInt64(0), reader.GetInt64(1))
            : LogPosition.Start;
    }

    /// <summary>Saves the cursor; false when it was reset meanwhile and must be reloaded.</summary>
    public async Task<bool> SaveAsync(NpgsqlConnection connection, LogPosition position, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_saveSql, connection, transaction);
        command.Parameters.AddWithValue("name", ConsumerName);
        command.Parameters.AddWithValue("position", position.Position);
        command.Parameters.AddWithValue("event_id", position.EventId);
        command.Parameters.AddWithValue("generation", Generation);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>Moves the cursor so that delivery restarts right after <paramref name="position"/>.</summary>
    public async Task ResetAsync(NpgsqlConnection connection, LogPosition position, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_resetSql, connection);
        command.Parameters.AddWithValue("name", ConsumerName);
        command.Parameters.AddWithValue("position", position.Position);
        command.Parameters.AddWithValue("event_id", position.EventId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Whether a reset moved the cursor since it was loaded.</summary>
    public async Task<bool> WasResetAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT generation FROM {settings.Qualify("consumers")} WHERE name = @name", connection);
        command.Parameters.AddWithValue("name", ConsumerName);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long generation && generation != Generation;
    }
}
