using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Applies the embedded scripts that a database lacks, in order, each in its own transaction
/// together with the record of its version. A session advisory lock per schema makes concurrent
/// installs from several processes wait for each other instead of racing.
/// </summary>
internal sealed class SchemaInstaller(NpgsqlDataSource dataSource, SchemaSettings settings, ILogger logger)
{
    public async Task<int> InstallAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, "SELECT pg_advisory_lock(@class, @key)", cancellationToken,
            ("class", SchemaSettings.AdvisoryLockClass), ("key", settings.InstallLockKey)).ConfigureAwait(false);
        try
        {
            return await InstallLockedAsync(connection, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // If the connection broke, the server already released the session lock.
            if (connection.State == System.Data.ConnectionState.Open)
            {
                await ExecuteAsync(connection, "SELECT pg_advisory_unlock(@class, @key)", CancellationToken.None,
                    ("class", SchemaSettings.AdvisoryLockClass), ("key", settings.InstallLockKey)).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The version installed in the database, or 0 when PgEvents is not installed.</summary>
    public async Task<int> GetInstalledVersionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await ReadVersionAsync(connection, cancellationToken).ConfigureAwait(false);
    }

    private async Task<int> InstallLockedAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var installed = await ReadVersionAsync(connection, cancellationToken).ConfigureAwait(false);
        if (installed > SchemaScript.LatestVersion)
        {
            throw new PgEventsException(
                $"Schema {settings.Schema} is at version {installed}, installed by a newer PgEvents; this library " +
                $"knows versions up to {SchemaScript.LatestVersion}. Upgrade the PgEvents package, or use another schema name.");
        }

        if (installed == 0)
        {
            await ExecuteAsync(connection,
                $"CREATE SCHEMA IF NOT EXISTS {settings.Schema}; " +
                $"CREATE TABLE IF NOT EXISTS {settings.Qualify("schema_version")} (" +
                "version integer PRIMARY KEY, script text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                cancellationToken).ConfigureAwait(false);
        }

        foreach (var script in SchemaScript.Embedded)
        {
            if (script.Version <= installed)
            {
                continue;
            }

            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, script.Render(settings), cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection,
                $"INSERT INTO {settings.Qualify("schema_version")} (version, script) VALUES (@version, @script)",
                cancellationToken, ("version", script.Version), ("script", script.Name)).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            PgEventsLog.SchemaScriptApplied(logger, settings.SchemaName, script.Name);
        }

        // Settings are re-applied on every install so a changed channel takes effect.
        await ExecuteAsync(connection,
            $"INSERT INTO {settings.Qualify("settings")} (schema_name, channel, trigger_prefix, capture_replica_writes) VALUES (@schema, @channel, @prefix, @replica) " +
            "ON CONFLICT (id) DO UPDATE SET schema_name = EXCLUDED.schema_name, channel = EXCLUDED.channel, " +
            "trigger_prefix = EXCLUDED.trigger_prefix, capture_replica_writes = EXCLUDED.capture_replica_writes",
            cancellationToken,
            ("schema", settings.SchemaName), ("channel", settings.NotificationChannel), ("prefix", settings.TriggerPrefix),
            ("replica", settings.CaptureReplicaWrites)).ConfigureAwait(false);

        return SchemaScript.LatestVersion;
    }

    private async Task<int> ReadVersionAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT to_regclass(format('%I.%I', @schema::text, 'schema_version'::text)) IS NOT NULL", connection);
        command.Parameters.AddWithValue("schema", settings.SchemaName);
        var exists = (bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        if (!exists)
        {
            return 0;
        }

        await using var versionCommand = new NpgsqlCommand(
            $"SELECT coalesce(max(version), 0) FROM {settings.Qualify("schema_version")}", connection);
        return (int)(await versionCommand.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private static async Task ExecuteAsync(
        NpgsqlConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
