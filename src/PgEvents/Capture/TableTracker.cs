using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace PgEvents;

/// <summary>Installs and removes the capture triggers on user tables.</summary>
internal sealed class TableTracker(NpgsqlDataSource dataSource, SchemaSettings settings, ILogger logger)
{
    public async Task TrackAsync(TableName table, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var oid = await ResolveAsync(connection, table, cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {settings.Schema}.track_table(@oid::regclass)", connection);
        command.Parameters.Add(new NpgsqlParameter<uint>("oid", NpgsqlDbType.Oid) { TypedValue = oid });
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.WrongObjectType or PostgresErrorCodes.ObjectNotInPrerequisiteState)
        {
            throw new PgEventsException($"Cannot track {table}: {e.MessageText}.", e);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedFunction)
        {
            throw NotInstalled(e);
        }

        PgEventsLog.TableTracked(logger, table);
    }

    public async Task UntrackAsync(TableName table, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var oid = await ResolveAsync(connection, table, cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {settings.Schema}.untrack_table(@oid::regclass)", connection);
        command.Parameters.Add(new NpgsqlParameter<uint>("oid", NpgsqlDbType.Oid) { TypedValue = oid });
        try
        {
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ObjectNotInPrerequisiteState)
        {
            throw new PgEventsException($"Cannot untrack {table}: {e.MessageText}.", e);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedFunction)
        {
            throw NotInstalled(e);
        }

        PgEventsLog.TableUntracked(logger, table);
    }

    /// <summary>Why changes of the table would not all be captured; empty when they would.</summary>
    public async Task<IReadOnlyList<string>> GetProblemsAsync(TableName table, CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var oid = await ResolveAsync(connection, table, cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"SELECT {settings.Schema}.tracking_problems(@oid::regclass)", connection);
        command.Parameters.Add(new NpgsqlParameter<uint>("oid", NpgsqlDbType.Oid) { TypedValue = oid });
        var problems = new List<string>();
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                problems.Add($"{table}: {reader.GetString(0)}");
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedFunction)
        {
            throw NotInstalled(e);
        }

        return problems;
    }

    public async Task<IReadOnlyList<TableName>> GetTrackedAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(
            """
            SELECT DISTINCT n.nspname, c.relname
              FROM pg_trigger t
              JOIN pg_class c ON c.oid = t.tgrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE t.tgname = @trigger AND t.tgparentid = 0
               AND t.tgargs = convert_to(t.tgrelid::text, 'UTF8') || '\x00'::bytea
             ORDER BY 1, 2
            """, connection);
        // Only the tracked tables themselves: a partition's or child's trigger names its tracked table.
        command.Parameters.AddWithValue("trigger", "!" + settings.TriggerPrefix + "_insert");
        var tables = new List<TableName>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            tables.Add(new TableName(reader.GetString(0), reader.GetString(1)));
        }

        return tables;
    }

    /// <summary>Finds the table by its exact catalog name; never by parsing SQL text.</summary>
    private static async Task<uint> ResolveAsync(NpgsqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = @schema AND c.relname = @name
            """, connection);
        command.Parameters.AddWithValue("schema", table.Schema);
        command.Parameters.AddWithValue("name", table.Name);
        var result = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return result is uint oid
            ? oid
            : throw new PgEventsException(
                $"Table {table} does not exist in database '{connection.Database}'. Names are exact and case-sensitive: " +
                "create the table first or correct the name (a name without schema means 'public').");
    }

    private PgEventsException NotInstalled(Exception inner) => new(
        $"PgEvents is not installed in schema {settings.Schema}; call InstallAsync first.", inner);
}
