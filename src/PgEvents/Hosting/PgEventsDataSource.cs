using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// The connections one consumer uses. By default PgEvents builds its own data sources from
/// <see cref="PgEventsOptions.ConnectionString"/>, kept apart from any the host registers: TCP
/// keepalive is turned on unless configured, so a half-open LISTEN connection is detected instead of
/// waiting forever; Npgsql logs through the host's logger factory; and
/// <see cref="PgEventsOptions.ConfigureDataSource"/> configures both data sources after that. With a
/// data source from the host (<see cref="PgEventsBuilder.UseDataSource(Func{IServiceProvider, NpgsqlDataSource})"/>)
/// every connection comes from it, and the host keeps owning it.
/// </summary>
internal sealed class PgEventsDataSource : IAsyncDisposable, IDisposable
{
    // Set only when PgEvents built the data sources, and so owns them; a host's data source is the host's.
    private readonly NpgsqlDataSource? _sessionSource;

    public PgEventsDataSource(PgEventsOptions options, NpgsqlDataSource? hostDataSource, ILoggerFactory? loggerFactory)
    {
        if (hostDataSource is not null)
        {
            RefuseUnfitSource(hostDataSource, options.ConsumerName);
            DataSource = hostDataSource;
            Sessions = new SessionConnections(hostDataSource, pooled: true);
            return;
        }

        var builder = new NpgsqlConnectionStringBuilder(options.ConnectionString);
        if (builder.KeepAlive == 0)
        {
            builder.KeepAlive = 15;
        }

        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = "PgEvents:" + options.ConsumerName;
        }

        var configure = options.ConfigureDataSource;
        DataSource = Build(builder, loggerFactory, configure);

        // Npgsql resets a pooled connection lazily: Close returns it to the pool as it is, and the
        // DISCARD ALL that drops its session state is only sent with its next use. A session advisory
        // lock (the consumer's lease) or a LISTEN taken on a pooled connection therefore outlives the
        // consumer's use of it, held by an idle backend until the pool hands that connection out again
        // or prunes it, and every other instance waits on standby meanwhile. Unpooled, Close ends the
        // backend, and PostgreSQL releases the session's locks and listens with it. Opening a physical
        // connection costs a few milliseconds, paid once per (re)connect of the consumer.
        var session = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Pooling = false, Multiplexing = false };
        _sessionSource = Build(session, loggerFactory, configure, sessions: true);
        Sessions = new SessionConnections(_sessionSource, pooled: false);
    }

    /// <summary>Pooled connections for short, stateless work: status queries, replays, installs.</summary>
    public NpgsqlDataSource DataSource { get; }

    /// <summary>
    /// Connections for what lives in a session: the consumer's working connection (its lease), its
    /// LISTEN connection, and the probe that checks they are real sessions.
    /// </summary>
    public SessionConnections Sessions { get; }

    /// <summary>
    /// Connections a consumer holds at once from a pooled host data source: its working session and
    /// its LISTEN for as long as it runs, and one at a time for status, lag, retention and probes.
    /// A snapshot being written takes one more, and handlers that use the same source their own.
    /// </summary>
    internal const int MinimumPoolSize = 3;

    private static void RefuseUnfitSource(NpgsqlDataSource dataSource, string consumer)
    {
        var settings = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);

        // A multiplexed connection has no session of its own between commands: no lease, no LISTEN.
        if (settings.Multiplexing)
        {
            throw new PgEventsException(
                $"PgEvents consumer '{consumer}' cannot use a data source with Multiplexing: its lease and its LISTEN need connections that are sessions of their own. " +
                "Give it a data source without Multiplexing.");
        }

        // Too small a pool does not fail at once: the consumer delivers, and everything else it does
        // waits for the pool's timeout and fails, so the health check reports it unreachable.
        if (settings.Pooling && settings.MaxPoolSize < MinimumPoolSize)
        {
            throw new PgEventsException(
                $"PgEvents consumer '{consumer}' needs at least {MinimumPoolSize} connections of the data source it is given (its Maximum Pool Size is {settings.MaxPoolSize}): " +
                $"its working session and its LISTEN for as long as it runs, and one for status, lag and retention; one more while a snapshot is written, " +
                "and whatever its handlers take from the same data source. Raise Maximum Pool Size.");
        }
    }

    private static NpgsqlDataSource Build(
        NpgsqlConnectionStringBuilder connectionString, ILoggerFactory? loggerFactory, Action<NpgsqlDataSourceBuilder>? configure, bool sessions = false)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString.ConnectionString);
        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        configure?.Invoke(builder);
        if (sessions)
        {
            // Whatever the callback did, a session must stay a connection of its own (see above).
            builder.ConnectionStringBuilder.Pooling = false;
            builder.ConnectionStringBuilder.Multiplexing = false;
        }

        return builder.Build();
    }

    public async ValueTask DisposeAsync()
    {
        if (_sessionSource is null)
        {
            return;
        }

        await _sessionSource.DisposeAsync().ConfigureAwait(false);
        await DataSource.DisposeAsync().ConfigureAwait(false);
    }

    public void Dispose()
    {
        if (_sessionSource is not null)
        {
            _sessionSource.Dispose();
            DataSource.Dispose();
        }
    }
}
