using Microsoft.Extensions.DependencyInjection;

namespace PgEvents.Tests.Infrastructure;

/// <summary>
/// A consumer built through <c>AddPgEvents</c> and run without a generic host. Its container registers
/// <c>AddMetrics()</c>, so the consumer's <c>PgEvents</c> meter comes from the container's own
/// <see cref="System.Diagnostics.Metrics.IMeterFactory"/>: a <c>MetricCollector</c> scoped to that
/// factory sees this consumer's measurements only, whatever other tests run alongside.
/// </summary>
public sealed class ConsumerHost : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();

    private ConsumerHost(ServiceProvider services)
    {
        Services = services;
        Consumer = services.GetRequiredService<IEventConsumer>();
        Sink = services.GetRequiredService<EventSink>();
    }

    public ServiceProvider Services { get; }

    public IEventConsumer Consumer { get; }

    public EventSink Sink { get; }

    public Task Running { get; private set; } = Task.CompletedTask;

    public static ConsumerHost Create(
        string connectionString, Action<PgEventsBuilder> map, Action<PgEventsOptions>? configure = null, EventSink? sink = null,
        Action<IServiceCollection>? services = null)
    {
        var collection = new ServiceCollection();
        collection.AddSingleton(sink ?? new EventSink());
        services?.Invoke(collection);
        collection.AddMetrics();
        var builder = collection.AddPgEvents(o =>
        {
            o.ConnectionString = connectionString;
            o.ConsumerName = "test";
            o.Retry.InitialDelay = TimeSpan.FromMilliseconds(10);
            o.Retry.MaxDelay = TimeSpan.FromMilliseconds(100);
            configure?.Invoke(o);

            // Each test gets its own log unless it chooses one: a consumer started at position 0
            // would otherwise meet other tests' tables, which block it (UnmappedTablePolicy.Block).
            if (o.SchemaName == PgEventsSchemaOptions.DefaultSchemaName)
            {
                o.SchemaName = "log_" + o.ConsumerName;
            }
        });
        map(builder);
        return new ConsumerHost(collection.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true }));
    }

    /// <summary>
    /// Validates and installs like the hosted service's start does, then runs the consumer in the
    /// background until stopped: when this returns, writes are captured and the mapping was checked.
    /// </summary>
    public async Task<ConsumerHost> StartAsync()
    {
        await ((PgEventConsumer)Consumer).PrepareAsync(CancellationToken.None);
        Running = Task.Run(() => Consumer.RunAsync(_stop.Token));
        return this;
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Running;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        await Services.DisposeAsync();
        _stop.Dispose();
    }
}
