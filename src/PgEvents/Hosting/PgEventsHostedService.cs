using Microsoft.Extensions.Hosting;

namespace PgEvents;

/// <summary>Runs the consumer for the lifetime of the host.</summary>
internal sealed class PgEventsHostedService(IEventConsumer consumer) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => consumer.RunAsync(stoppingToken);
}
