using Microsoft.Extensions.Options;
using Npgsql;

namespace PgEvents;

/// <summary>
/// The connection pool PgEvents uses, kept apart from any <see cref="NpgsqlDataSource"/> the host
/// registers. TCP keepalive is turned on unless configured, so a half-open LISTEN connection is
/// detected instead of waiting forever.
/// </summary>
internal sealed class PgEventsDataSource : IAsyncDisposable, IDisposable
{
    public PgEventsDataSource(IOptions<PgEventsOptions> options)
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

        DataSource = NpgsqlDataSource.Create(builder);
    }

    public NpgsqlDataSource DataSource { get; }

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();

    public void Dispose() => DataSource.Dispose();
}
