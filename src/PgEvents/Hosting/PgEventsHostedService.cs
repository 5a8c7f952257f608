using Microsoft.Extensions.Hosting;

namespace PgEvents;

/// <summary>
/// Runs the consumer for the lifetime of the host. Start completes only once the mappings are
/// validated and the capture triggers installed, so writes made after the host started are captured
/// and a bad mapping stops the host from starting.
/// </summary>
internal sealed class PgEventsHostedService(PgEventConsumer consumer) : BackgroundService
{
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await consumer.PrepareAsync(cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => consumer.RunAsync(stoppingToken);
}
