using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using PgEvents;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds PgEvents consumers to the host's health checks.</summary>
public static class PgEventsHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds a health check of one PgEvents consumer. Healthy when it is active (or a standby ready to
    /// take over) and keeping up; Degraded when blocked on a failing event, lagging more than
    /// <see cref="PgEventsOptions.HealthCheckMaxLag"/>, or running but not connected yet (starting, or
    /// waiting to reconnect after a lost connection); Unhealthy when it is not running, cannot reach
    /// its database, or an error that reconnecting does not cure keeps it from running
    /// (<see cref="ConsumerStatus.Fault"/>). The result's data carries its positions, lag and error.
    /// Call it once per consumer to check several.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="consumer">
    /// The registration name given to <c>AddPgEvents(name, …)</c>; null for the consumer registered without a name.
    /// </param>
    /// <param name="name">The name of the check; default <c>pgevents</c>, or <c>pgevents-</c> followed by the consumer's registration name.</param>
    /// <param name="failureStatus">The status reported when the consumer is unhealthy; default <see cref="HealthStatus.Unhealthy"/>.</param>
    /// <param name="tags">Tags to filter checks by.</param>
    /// <param name="timeout">How long the check may take; default none.</param>
    /// <returns>The builder.</returns>
    public static IHealthChecksBuilder AddPgEvents(
        this IHealthChecksBuilder builder,
        string? consumer = null,
        string? name = null,
        HealthStatus? failureStatus = null,
        IEnumerable<string>? tags = null,
        TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var registration = consumer ?? Options.Options.DefaultName;
        name ??= registration.Length == 0 ? "pgevents" : "pgevents-" + registration;
        return builder.Add(new HealthCheckRegistration(
            name,
            sp => sp.GetKeyedService<PgEventConsumer>(registration) is { } found
                ? new PgEventsHealthCheck(found, sp.GetRequiredService<IOptionsMonitor<PgEventsOptions>>().Get(registration).HealthCheckMaxLag)
                : new UnregisteredConsumerCheck(registration),
            failureStatus,
            tags,
            timeout));
    }

    /// <summary>Says what is wrong instead of failing the whole health report.</summary>
    private sealed class UnregisteredConsumerCheck(string registration) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(new HealthCheckResult(
                context.Registration.FailureStatus,
                registration.Length == 0
                    ? "No PgEvents consumer is registered without a name: call services.AddPgEvents(...), or name the consumer in AddHealthChecks().AddPgEvents(consumer: ...)."
                    : $"No PgEvents consumer is registered as '{registration}': call services.AddPgEvents(\"{registration}\", ...)."));
    }
}
