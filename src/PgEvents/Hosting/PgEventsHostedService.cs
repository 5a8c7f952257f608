using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Runs one consumer for the lifetime of the host. Start completes only once the mappings are
/// validated and the capture triggers installed, so writes made after the host started are captured
/// and a bad mapping stops the host from starting.
/// </summary>
internal sealed class PgEventsHostedService(
    string registration, PgEventConsumer consumer, PgEventsRegistrations registrations, IOptionsMonitor<PgEventsOptions> options, IServiceProvider services)
    : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        RefuseSharedCursor();
        await consumer.PrepareAsync(cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => consumer.RunAsync(stoppingToken);

    /// <summary>
    /// Two registrations of one host on the same cursor would make one of them a standby of the other
    /// for good, its handlers never called: almost certainly a copied configuration.
    /// </summary>
    private void RefuseSharedCursor()
    {
        var mine = options.Get(registration);
        var myDatabase = DatabaseOf(registration);
        foreach (var other in registrations.Names)
        {
            if (other == registration)
            {
                continue;
            }

            var theirs = options.Get(other);
            if (theirs.ConsumerName == mine.ConsumerName && theirs.SchemaName == mine.SchemaName && DatabaseOf(other) == myDatabase)
            {
                throw new PgEventsException(
                    $"{PgEventsRegistrations.Describe(registration)} and {PgEventsRegistrations.Describe(other)} both use the cursor '{mine.ConsumerName}' " +
                    $"of the database {myDatabase}: one would only ever stand by for the other. Give each its own PgEventsOptions.ConsumerName.");
            }
        }
    }

    /// <summary>Where a registration's connections go, whatever else its connection string says.</summary>
    private string DatabaseOf(string name)
    {
        var dataSource = services.GetRequiredKeyedService<PgEventsDataSource>(name).DataSource;
        var settings = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        var host = (settings.Host ?? "localhost").ToLowerInvariant();
        return $"'{settings.Database ?? settings.Username}' on {host}:{settings.Port}";
    }
}
