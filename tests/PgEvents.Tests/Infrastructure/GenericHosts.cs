using Microsoft.Extensions.Hosting;

namespace PgEvents.Tests.Infrastructure;

/// <summary>Generic hosts for tests that go through the hosted services, and the options that make their consumers recover quickly.</summary>
public static class GenericHosts
{
    /// <summary>A host builder without the defaults' configuration files, environment and console logging.</summary>
    public static HostApplicationBuilder NewBuilder() => Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });

    /// <summary>Retries, reconnects and takeovers in milliseconds, so tests wait on events rather than on backoff.</summary>
    public static void QuickRecovery(PgEventsOptions options)
    {
        options.Retry.InitialDelay = TimeSpan.FromMilliseconds(10);
        options.Retry.MaxDelay = TimeSpan.FromMilliseconds(100);
        options.ReconnectDelay = TimeSpan.FromMilliseconds(50);
        options.StandbyRetryInterval = TimeSpan.FromMilliseconds(50);
    }
}
