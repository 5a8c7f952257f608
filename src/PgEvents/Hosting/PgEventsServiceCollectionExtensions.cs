using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PgEvents;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers PgEvents in a service collection.</summary>
public static class PgEventsServiceCollectionExtensions
{
    /// <summary>
    /// Registers the PgEvents consumer: <see cref="IEventConsumer"/> and a hosted service that
    /// installs the schema and triggers, then consumes while the host runs. Options are validated
    /// when the host starts. Calling it again adds to the configuration and registers nothing twice.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the connection string, consumer name and other options.</param>
    /// <returns>A builder to map tables to handlers.</returns>
    public static PgEventsBuilder AddPgEvents(this IServiceCollection services, Action<PgEventsOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);

        var optionsBuilder = services.AddOptions<PgEventsOptions>();
        if (configure is not null)
        {
            optionsBuilder.Configure(configure);
        }

        if (!services.Any(d => d.ServiceType == typeof(PgEventsMarker)))
        {
            services.AddSingleton<PgEventsMarker>();
            optionsBuilder.ValidateOnStart();
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgEventsOptions>, PgEventsOptionsValidator>());
            services.TryAddSingleton(TimeProvider.System);
            services.TryAddSingleton<PgEventsDataSource>();
            services.TryAddSingleton(sp => new PgEventsMetrics(sp.GetService<IMeterFactory>()));
            services.TryAddSingleton<PgEventConsumer>();
            services.TryAddSingleton<IEventConsumer>(sp => sp.GetRequiredService<PgEventConsumer>());
            services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PgEventsHostedService>());
        }

        return new PgEventsBuilder(services);
    }

    /// <summary>Marks a collection in which PgEvents is already registered.</summary>
    private sealed class PgEventsMarker;
}
