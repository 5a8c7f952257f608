using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>A fresh, empty database per test class on the shared server.</summary>
public sealed class DatabaseFixture : IAsyncLifetime
{
    private readonly Dictionary<string, Task<object>> _once = new(StringComparer.Ordinal);
    private NpgsqlDataSource? _dataSource;

    public string ConnectionString { get; private set; } = string.Empty;

    public NpgsqlDataSource DataSource => _dataSource ?? throw new InvalidOperationException("Fixture not initialized.");

    public async Task InitializeAsync()
    {
        var server = await TestServer.GetAsync();
        ConnectionString = await server.CreateDatabaseAsync("pgevents_tests");
        _dataSource = NpgsqlDataSource.Create(ConnectionString);
    }

    public async Task DisposeAsync()
    {
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
        }

        var server = await TestServer.GetAsync();
        await server.DropDatabaseAsync(ConnectionString);
    }

    public async Task ExecuteAsync(string sql, params (string Name, object Value)[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync();
    }

    public async Task<T> ScalarAsync<T>(string sql, params (string Name, object Value)[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>
    /// Runs class-wide setup once: xunit creates a new test class instance for every test, but the
    /// fixture (and its database) lives for the whole class.
    /// </summary>
    public async Task<T> OnceAsync<T>(string key, Func<Task<T>> setup)
        where T : class
    {
        Task<object> task;
        lock (_once)
        {
            if (!_once.TryGetValue(key, out task!))
            {
                task = Run();
                _once[key] = task;
            }
        }

        return (T)await task;

        async Task<object> Run() => await setup();
    }

    /// <summary>Installs a PgEvents schema (default name unless given) and returns its manager.</summary>
    public async Task<PgEventsSchema> InstallAsync(string? schemaName = null, string? channel = null)
    {
        var schema = new PgEventsSchema(DataSource, new PgEventsSchemaOptions
        {
            SchemaName = schemaName ?? PgEventsSchemaOptions.DefaultSchemaName,
            NotificationChannel = channel ?? PgEventsSchemaOptions.DefaultNotificationChannel,
        });
        await schema.InstallAsync();
        return schema;
    }

    /// <summary>
    /// Installs schema versions 1 to <paramref name="version"/> exactly as that release's installer
    /// did (scripts, version rows, settings row), for upgrade tests; returns the schema for the
    /// current installer to upgrade.
    /// </summary>
    public async Task<PgEventsSchema> InstallAsOfVersionAsync(int version, string? schemaName = null)
    {
        var settings = new SchemaSettings(schemaName ?? PgEventsSchemaOptions.DefaultSchemaName, PgEventsSchemaOptions.DefaultNotificationChannel);
        await ExecuteAsync(
            $"CREATE SCHEMA {settings.Schema}; CREATE TABLE {settings.Qualify("schema_version")} " +
            "(version integer PRIMARY KEY, script text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
        foreach (var script in SchemaScript.Embedded.Where(s => s.Version <= version))
        {
            // In a transaction, as the installer runs each script (some lock tables).
            await ExecuteAsync("BEGIN;\n" + script.Render(settings) + "\nCOMMIT;");
            await ExecuteAsync($"INSERT INTO {settings.Qualify("schema_version")} (version, script) VALUES (@v, @s)", ("v", script.Version), ("s", script.Name));
        }

        await ExecuteAsync(
            $"INSERT INTO {settings.Qualify("settings")} (schema_name, channel, trigger_prefix) VALUES (@schema, @channel, @prefix)",
            ("schema", settings.SchemaName), ("channel", settings.NotificationChannel), ("prefix", settings.TriggerPrefix));
        return new PgEventsSchema(DataSource, new PgEventsSchemaOptions { SchemaName = settings.SchemaName });
    }
}
