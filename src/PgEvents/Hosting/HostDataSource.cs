using Npgsql;

namespace PgEvents;

/// <summary>
/// A data source the host supplies for one consumer (<see cref="PgEventsBuilder.UseDataSource(Func{IServiceProvider, NpgsqlDataSource})"/>),
/// keyed by the consumer's registration name. The host owns it: PgEvents never disposes it.
/// </summary>
internal sealed class HostDataSource(Func<IServiceProvider, NpgsqlDataSource> resolve)
{
    public NpgsqlDataSource Resolve(IServiceProvider services) =>
        resolve(services) ?? throw new InvalidOperationException("The data source given to PgEventsBuilder.UseDataSource returned null.");
}
