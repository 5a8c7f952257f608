using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace PgEvents;

/// <summary>
/// The connections PgEvents uses, kept apart from any <see cref="NpgsqlDataSource"/> the host
/// registers. TCP keepalive is turned on unless configured, so a half-open LISTEN connection is
/// detected instead of waiting forever. Npgsql logs through the host's logger factory, and
/// <see cref="PgEventsOptions.ConfigureDataSource"/> configures both data sources after that.
/// </summary>
internal sealed class PgEventsDataSource : IAsyncDisposable, IDisposable
{
    public PgEventsDataSource(IOptions<PgEventsOptions> options, ILoggerFactory? loggerFactory = null)
    {
        var builder = new NpgsqlConnectionStringBuilder(options.Value.ConnectionString);
        if (builder.KeepAlive == 0)
        {
            builder.KeepAlive = 15;
        }

        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = "PgEvents:" + options.Value.ConsumerName;
        }

        var configure = options.Value.ConfigureDataSource;
        DataSource = Build(builder, loggerFactory, configure);

        // Npgsql resets a pooled connection lazily: Close returns it to the pool as it is, and the
        // DISCARD ALL that drops its session state is only sent with its next use. A session advisory
        // lock (the consumer's lease) or a LISTEN taken on a pooled connection therefore outlives the
        // consumer's use of it, held by an idle backend until the pool hands that connection out again
        // or prunes it, and every other instance waits on standby meanwhile. Unpooled, Close ends the
        // backend, and PostgreSQL releases the session's locks and listens with it. Opening a physical
        // connection costs a few milliseconds, paid once per (re)connect of the consumer.
        var session = new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Pooling = false, Multiplexing = false };
        SessionDataSource = Build(session, loggerFactory, configure, sessions: true);
    }

    /// <summary>Pooled connections for short, stateless work: status queries, replays, installs.</summary>
    public NpgsqlDataSource DataSource { get; }

    /// <summary>
    /// Unpooled connections for what lives in a session: the consumer's working connection (its lease),
    /// its LISTEN connection, and the probe that checks they are real sessions.
    /// </summary>
    public NpgsqlDataSource SessionDataSource { get; }

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
        await SessionDataSource.DisposeAsync().ConfigureAwait(false);
        await DataSource.DisposeAsync().ConfigureAwait(false);
    }

    public void Dispose()
    {
        SessionDataSource.Dispose();
        DataSource.Dispose();
    }
}
