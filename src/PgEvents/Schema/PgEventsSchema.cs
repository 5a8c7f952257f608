using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace PgEvents;

/// <summary>
/// The PgEvents schema inside one database: installs it and decides which tables are captured.
/// Consumers installed through <c>AddPgEvents</c> do this for every mapped table; use this type
/// directly for tooling, migrations and tests.
/// </summary>
public sealed class PgEventsSchema
{
    private readonly SchemaInstaller _installer;
    private readonly TableTracker _tracker;
    private readonly NpgsqlDataSource _dataSource;

    /// <summary>Creates the schema manager.</summary>
    /// <param name="dataSource">The database holding the tables to capture.</param>
    /// <param name="options">Schema name and notification channel; defaults when null.</param>
    /// <param name="logger">Receives installation messages; none when null.</param>
    public PgEventsSchema(NpgsqlDataSource dataSource, PgEventsSchemaOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        logger ??= NullLogger.Instance;
        _dataSource = dataSource;
        Settings = SchemaSettings.From(options ?? new PgEventsSchemaOptions());
        _installer = new SchemaInstaller(dataSource, Settings, logger);
        _tracker = new TableTracker(dataSource, Settings, logger);
    }

    internal SchemaSettings Settings { get; }

    /// <summary>The schema version this library installs.</summary>
    public static int LatestVersion => SchemaScript.LatestVersion;

    /// <summary>
    /// Creates or upgrades the schema. Idempotent, and safe when several processes install at once.
    /// </summary>
    /// <param name="cancellationToken">Cancels the installation.</param>
    /// <returns>The installed schema version.</returns>
    /// <exception cref="PgEventsException">The schema was installed by a newer PgEvents version.</exception>
    public Task<int> InstallAsync(CancellationToken cancellationToken = default) => _installer.InstallAsync(cancellationToken);

    /// <summary>The installed schema version, 0 when PgEvents is not installed.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The version number.</returns>
    public Task<int> GetInstalledVersionAsync(CancellationToken cancellationToken = default) =>
        _installer.GetInstalledVersionAsync(cancellationToken);

    /// <summary>
    /// Installs the capture triggers on a table: every INSERT, UPDATE (that changes something),
    /// DELETE and TRUNCATE is written to the log from then on. Calling it again is harmless.
    /// </summary>
    /// <param name="table">The exact table name.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <exception cref="PgEventsException">The table does not exist or cannot be tracked.</exception>
    public Task TrackTableAsync(TableName table, CancellationToken cancellationToken = default) =>
        _tracker.TrackAsync(table, cancellationToken);

    /// <summary>Removes the capture triggers from a table. Events already captured stay in the log.</summary>
    /// <param name="table">The exact table name.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <exception cref="PgEventsException">The table does not exist.</exception>
    public Task UntrackTableAsync(TableName table, CancellationToken cancellationToken = default) =>
        _tracker.UntrackAsync(table, cancellationToken);

    /// <summary>Lists the tables whose changes are captured into this schema.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The tracked tables, ordered by schema and name.</returns>
    public Task<IReadOnlyList<TableName>> GetTrackedTablesAsync(CancellationToken cancellationToken = default) =>
        _tracker.GetTrackedAsync(cancellationToken);

    /// <summary>
    /// Throws a <see cref="PgEventsException"/> naming every problem (a missing or disabled capture
    /// trigger on a table, one of its partitions or children) that would keep changes of
    /// <paramref name="tables"/> out of the log. <see cref="TrackTableAsync"/> repairs them.
    /// </summary>
    /// <param name="tables">The tables whose capture is checked.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>A task that completes when every table is fully captured.</returns>
    public async Task EnsureCapturedAsync(IEnumerable<TableName> tables, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tables);
        var problems = new List<string>();
        foreach (var table in tables)
        {
            problems.AddRange(await _tracker.GetProblemsAsync(table, cancellationToken).ConfigureAwait(false));
        }

        if (problems.Count > 0)
        {
            throw new PgEventsException(
                "Changes of mapped tables would not be captured: " + string.Join("; ", problems) +
                ". Track the tables again (InstallOnStart, IEventConsumer.InstallAsync or PgEventsSchema.TrackTableAsync) to repair the triggers.");
        }
    }

    /// <summary>
    /// Removes a consumer's cursor and dead letters, so it no longer holds retention back. If that
    /// consumer runs again it starts over from the oldest event still kept.
    /// </summary>
    /// <param name="consumerName">The consumer to remove.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>True when the consumer existed.</returns>
    public async Task<bool> UnregisterConsumerAsync(string consumerName, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(consumerName);
        await using var command = _dataSource.CreateCommand(
            $"DELETE FROM {Settings.Qualify("dead_letters")} WHERE consumer = @name; " +
            $"DELETE FROM {Settings.Qualify("consumers")} WHERE name = @name");
        command.Parameters.AddWithValue("name", consumerName);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <summary>Lists the registered consumers and their cursors.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>Every registered consumer with its saved cursor, by name.</returns>
    public async Task<IReadOnlyList<ConsumerCursor>> GetConsumersAsync(CancellationToken cancellationToken = default)
    {
        await using var command = _dataSource.CreateCommand(
            $"SELECT name, position, event_id, created_at, updated_at FROM {Settings.Qualify("consumers")} ORDER BY name");
        var consumers = new List<ConsumerCursor>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            consumers.Add(new ConsumerCursor(
                reader.GetString(0),
                reader.GetInt64(1),
                reader.GetInt64(2),
                reader.GetFieldValue<DateTimeOffset>(3),
                reader.GetFieldValue<DateTimeOffset>(4)));
        }

        return consumers;
    }

    /// <summary>
    /// Deletes, in bounded batches, the events every registered consumer has passed that committed
    /// longer ago than <paramref name="olderThan"/>. Consumers run this on their own every
    /// <see cref="PgEventsRetentionOptions.Interval"/>; call it for maintenance or tests.
    /// </summary>
    /// <param name="olderThan">Minimum age of a commit to delete.</param>
    /// <param name="batchSize">Transactions per delete statement.</param>
    /// <param name="cancellationToken">Cancels between batches.</param>
    /// <returns>The number of events deleted.</returns>
    public async Task<long> PurgeAsync(TimeSpan olderThan, int batchSize = 1000, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        return await new LogRetention(Settings).PurgeAsync(connection, olderThan, batchSize, int.MaxValue, cancellationToken).ConfigureAwait(false);
    }
}
