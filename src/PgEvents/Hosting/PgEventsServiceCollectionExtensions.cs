using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PgEvents;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers PgEvents consumers in a service collection.</summary>
public static class PgEventsServiceCollectionExtensions
{
    /// <summary>
    /// Registers the PgEvents consumer, configured elsewhere (<c>services.Configure&lt;PgEventsOptions&gt;(...)</c>
    /// or another call). See <see cref="AddPgEvents(IServiceCollection, Action{PgEventsOptions})"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <returns>A builder to map tables to handlers.</returns>
    public static PgEventsBuilder AddPgEvents(this IServiceCollection services) =>
        Register(services, Options.Options.DefaultName, configure: null);

    /// <summary>
    /// Registers the PgEvents consumer: <see cref="IEventConsumer"/> and a hosted service that
    /// installs the schema and triggers, then consumes while the host runs. Options are validated
    /// when the host starts. Calling it again adds to the configuration and registers nothing twice.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the connection string, consumer name and other options.</param>
    /// <returns>A builder to map tables to handlers.</returns>
    public static PgEventsBuilder AddPgEvents(this IServiceCollection services, Action<PgEventsOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        return Register(services, Options.Options.DefaultName, configure);
    }

    /// <summary>
    /// Registers one of several consumers in the host under <paramref name="name"/>, configured
    /// elsewhere. See <see cref="AddPgEvents(IServiceCollection, string, Action{PgEventsOptions})"/>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The registration name; not empty.</param>
    /// <returns>A builder to map tables to this consumer's handlers.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or white space.</exception>
    public static PgEventsBuilder AddPgEvents(this IServiceCollection services, string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return Register(services, name, configure: null);
    }

    /// <summary>
    /// Registers one of several consumers in the host, under <paramref name="name"/>: its own options
    /// (<c>IOptionsMonitor&lt;PgEventsOptions&gt;.Get(name)</c>), handlers, cursor, hosted service and
    /// data source. Resolve it as the keyed service <c>[FromKeyedServices(name)] IEventConsumer</c>,
    /// and check its health with <c>AddHealthChecks().AddPgEvents(name)</c>. Its
    /// <see cref="PgEventsOptions.ConsumerName"/> (the name of its cursor in the database) is
    /// <paramref name="name"/> unless configured. Calling it again with the same name adds to that
    /// consumer's configuration and registers nothing twice.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The registration name; not empty.</param>
    /// <param name="configure">Sets the connection string and other options of this consumer.</param>
    /// <returns>A builder to map tables to this consumer's handlers.</returns>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or white space.</exception>
    public static PgEventsBuilder AddPgEvents(this IServiceCollection services, string name, Action<PgEventsOptions> configure)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(configure);
        return Register(services, name, configure);
    }

    private static PgEventsBuilder Register(IServiceCollection services, string name, Action<PgEventsOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(services);

        var registrations = RegisterShared(services);
        var optionsBuilder = services.AddOptions<PgEventsOptions>(name);
        if (registrations.Add(name))
        {
            if (name.Length > 0)
            {
                // After every configuration, whatever the order of the calls, and only if none chose a cursor name.
                optionsBuilder.PostConfigure(o => o.UseRegistrationNameUnlessSet(name));
            }

            optionsBuilder.ValidateOnStart();
            RegisterConsumer(services, name);
        }

        if (configure is not null)
        {
            optionsBuilder.Configure(configure);
        }

        return new PgEventsBuilder(services, name, registrations);
    }

    private static PgEventsRegistrations RegisterShared(IServiceCollection services)
    {
        if (services.FirstOrDefault(d => d.ServiceType == typeof(PgEventsRegistrations) && !d.IsKeyedService)?.ImplementationInstance is PgEventsRegistrations known)
        {
            return known;
        }

        var registrations = new PgEventsRegistrations();
        services.AddSingleton(registrations);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PgEventsOptions>, PgEventsOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new PgEventsMetrics(sp.GetService<IMeterFactory>()));
        return registrations;
    }

    private static void RegisterConsumer(IServiceCollection services, string name)
    {
        services.AddKeyedSingleton(name, static (sp, key) =>
        {
            var name = (string)key!;
            var options = sp.GetRequiredService<IOptionsMonitor<PgEventsOptions>>().Get(name);
            var host = sp.GetKeyedService<HostDataSource>(name)?.Resolve(sp);
            return new PgEventsDataSource(options, host, sp.GetService<ILoggerFactory>());
        });
        services.AddKeyedSingleton(name, static (sp, key) =>
        {
            var name = (string)key!;
            return new PgEventConsumer(
                sp.GetRequiredKeyedService<PgEventsDataSource>(name),
                sp.GetRequiredService<IOptionsMonitor<PgEventsOptions>>().Get(name),
                sp.GetServices<HandlerRegistration>().Where(r => r.Consumer == name),
                sp.GetRequiredService<IServiceScopeFactory>(),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<PgEventsMetrics>(),
                sp.GetService<ILoggerFactory>());
        });
        services.AddKeyedSingleton<IEventConsumer>(name, static (sp, key) => sp.GetRequiredKeyedService<PgEventConsumer>(key));
        if (name.Length == 0)
        {
            services.AddSingleton(static sp => sp.GetRequiredKeyedService<PgEventConsumer>(Options.Options.DefaultName));
            services.AddSingleton<IEventConsumer>(static sp => sp.GetRequiredKeyedService<PgEventConsumer>(Options.Options.DefaultName));
        }

        services.AddSingleton<IHostedService>(sp => new PgEventsHostedService(
            name, sp.GetRequiredKeyedService<PgEventConsumer>(name), sp.GetRequiredService<PgEventsRegistrations>(), sp.GetRequiredService<IOptionsMonitor<PgEventsOptions>>(), sp));
    }
}
