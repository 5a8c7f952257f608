using System.Collections.Concurrent;
using Npgsql;
using Testcontainers.PostgreSql;

namespace PgEvents.Testing;

/// <summary>
/// A real PostgreSQL server for tests and samples, obtained with one call. In order of preference:
/// the connection string in <see cref="ConnectionEnvironmentVariable"/>; a Testcontainers container
/// when a Docker engine answers; a throwaway cluster from local PostgreSQL binaries. Databases created
/// through <see cref="CreateDatabaseAsync"/> are dropped, and a throwaway server removed, on dispose.
/// </summary>
/// <remarks>
/// Only the connection pools of this instance's own connection strings (<see cref="ConnectionString"/>
/// and those <see cref="CreateDatabaseAsync"/> returned) are ever cleared; other pools of the process
/// are left alone.
/// </remarks>
public sealed class PostgresServer : IAsyncDisposable
{
    /// <summary>The environment variable holding an explicit connection string to use.</summary>
    public const string ConnectionEnvironmentVariable = "PGEVENTS_TEST_CONNECTION";

    private readonly LocalCluster? _cluster;
    private readonly PostgreSqlContainer? _container;
    // Database name to the connection string handed out for it.
    private readonly ConcurrentDictionary<string, string> _databases = new(StringComparer.Ordinal);
    private int _disposed;

    private PostgresServer(PostgresServerKind kind, string connectionString, LocalCluster? cluster, PostgreSqlContainer? container)
    {
        Kind = kind;
        ConnectionString = connectionString;
        _cluster = cluster;
        _container = container;
        if (cluster is not null)
        {
            // Last resort when a test run ends without disposing: never leave a server behind.
            AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        }
    }

    /// <summary>Where the server runs.</summary>
    public PostgresServerKind Kind { get; }

    /// <summary>A superuser connection string to the server's maintenance database.</summary>
    public string ConnectionString { get; }

    /// <summary>Whether <see cref="StopAsync"/> and <see cref="RestartAsync"/> are available (local clusters only).</summary>
    public bool CanRestart => _cluster is not null;

    /// <summary>The server log file of a local cluster; null otherwise.</summary>
    public string? LogFile => _cluster?.LogFile;

    /// <summary>Obtains a server; see the type remarks for the order of preference.</summary>
    /// <param name="options">How to start it; defaults when null.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <returns>A running server.</returns>
    /// <exception cref="InvalidOperationException">No way to obtain a server; the message says how to fix it.</exception>
    public static async Task<PostgresServer> StartAsync(PostgresServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new PostgresServerOptions();

        var explicitConnection = options.ConnectionString ?? Environment.GetEnvironmentVariable(ConnectionEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(explicitConnection))
        {
            return new PostgresServer(PostgresServerKind.External, explicitConnection, cluster: null, container: null);
        }

        if (options.AllowDocker && await DockerProbe.IsEngineReachableAsync(cancellationToken).ConfigureAwait(false))
        {
            return await StartContainerAsync(options, cancellationToken).ConfigureAwait(false);
        }

        var binDirectory = LocalCluster.FindBinDirectory(options.BinDirectory);
        if (binDirectory is null)
        {
            throw new InvalidOperationException(
                "PgEvents.Testing could not obtain a PostgreSQL server. Do one of: set " + ConnectionEnvironmentVariable +
                " to a connection string of a server where the user may create databases; start a Docker engine; or install " +
                "the PostgreSQL server binaries (Debian/Ubuntu: 'apt-get install postgresql', which provides initdb and pg_ctl " +
                "under /usr/lib/postgresql/<version>/bin) or set PostgresServerOptions.BinDirectory.");
        }

        var cluster = await LocalCluster.CreateAsync(binDirectory, options, cancellationToken).ConfigureAwait(false);
        return new PostgresServer(PostgresServerKind.LocalCluster, cluster.ConnectionString, cluster, container: null);
    }

    /// <summary>Creates an empty database and returns a connection string to it.</summary>
    /// <param name="namePrefix">Readable start of the generated name, e.g. the test class.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A connection string to the new database.</returns>
    public async Task<string> CreateDatabaseAsync(string? namePrefix = null, CancellationToken cancellationToken = default)
    {
        var prefix = new string((namePrefix ?? "test").ToLowerInvariant().Where(c => char.IsAsciiLetterOrDigit(c) || c == '_').Take(40).ToArray());
        var name = $"{(prefix.Length == 0 ? "test" : prefix)}_{Guid.NewGuid().ToString("N")[..10]}";
        await ExecuteAsync($"CREATE DATABASE \"{name}\"", cancellationToken).ConfigureAwait(false);
        var connectionString = new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
        _databases.TryAdd(name, connectionString);
        return connectionString;
    }

    /// <summary>
    /// Drops a database created by <see cref="CreateDatabaseAsync"/>, closing its connections: the
    /// idle ones pooled for the returned connection string (and for <paramref name="connectionString"/>
    /// if it differs) are closed first; any other is terminated by the server.
    /// </summary>
    /// <param name="connectionString">The connection string returned when it was created.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the database is gone.</returns>
    public async Task DropDatabaseAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        var name = new NpgsqlConnectionStringBuilder(connectionString).Database;
        if (name is null || !_databases.TryRemove(name, out var created))
        {
            throw new ArgumentException("Only databases created by this server instance can be dropped.", nameof(connectionString));
        }

        ClearPools(created, connectionString);
        await ExecuteAsync($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops a local cluster, as a crash when <paramref name="immediate"/> is true.</summary>
    /// <param name="immediate">Skip the shutdown checkpoint, like a power loss of the server process.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the server is down.</returns>
    public Task StopAsync(bool immediate = false, CancellationToken cancellationToken = default) =>
        RequireCluster().StopAsync(immediate, cancellationToken);

    /// <summary>Starts a stopped local cluster again on the same port.</summary>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the server accepts connections.</returns>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        await RequireCluster().StartAsync(cancellationToken).ConfigureAwait(false);

        // Pooled connections of our own connection strings died with the old server process.
        ClearPools([ConnectionString, .. _databases.Values]);
    }

    /// <summary>Stops and starts a local cluster.</summary>
    /// <param name="immediate">Stop as a crash rather than a clean shutdown.</param>
    /// <param name="cancellationToken">Cancels the operation.</param>
    /// <returns>A task that completes when the server accepts connections again.</returns>
    public async Task RestartAsync(bool immediate = false, CancellationToken cancellationToken = default)
    {
        await StopAsync(immediate, cancellationToken).ConfigureAwait(false);
        await StartAgainAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Drops the databases this instance created and removes a throwaway server; closes the pooled
    /// connections of this instance's connection strings.
    /// </summary>
    /// <returns>A task that completes when everything is cleaned up.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Idle connections would otherwise stay pooled for a server or databases that are gone.
        ClearPools([ConnectionString, .. _databases.Values]);
        if (_cluster is not null)
        {
            AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
            await _cluster.DisposeAsync().ConfigureAwait(false);
            return;
        }

        if (_container is not null)
        {
            await _container.DisposeAsync().ConfigureAwait(false);
            return;
        }

        // An external server outlives us: remove only what we created.
        foreach (var name in _databases.Keys)
        {
            try
            {
                await ExecuteAsync($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", CancellationToken.None).ConfigureAwait(false);
            }
            catch (NpgsqlException)
            {
                // Best effort: a leftover uniquely named database harms nothing.
            }
        }

        ClearPools(ConnectionString);
    }

    private static async Task<PostgresServer> StartContainerAsync(PostgresServerOptions options, CancellationToken cancellationToken)
    {
        var command = new List<string>();
        var settings = new Dictionary<string, string>(options.Settings, StringComparer.Ordinal);
        if (!options.Durable)
        {
            settings.TryAdd("fsync", "off");
            settings.TryAdd("synchronous_commit", "off");
            settings.TryAdd("full_page_writes", "off");
        }

        settings.TryAdd("max_connections", "300");
        foreach (var (name, value) in settings)
        {
            command.Add("-c");
            command.Add($"{name}={value.Trim('\'')}");
        }

        var container = new PostgreSqlBuilder(options.ContainerImage).WithCommand([.. command]).Build();
        await container.StartAsync(cancellationToken).ConfigureAwait(false);
        return new PostgresServer(PostgresServerKind.Container, container.GetConnectionString(), cluster: null, container);
    }

    private LocalCluster RequireCluster() => _cluster
        ?? throw new NotSupportedException($"Only a {nameof(PostgresServerKind.LocalCluster)} server can be stopped and started; this one is {Kind}.");

    private static void ClearPools(params IEnumerable<string> connectionStrings)
    {
        foreach (var connectionString in connectionStrings.Distinct(StringComparer.Ordinal))
        {
            using var connection = new NpgsqlConnection(connectionString);
            NpgsqlConnection.ClearPool(connection);
        }
    }

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private void OnProcessExit(object? sender, EventArgs e) => _cluster?.StopAtExit();
}
