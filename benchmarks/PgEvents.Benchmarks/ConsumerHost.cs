using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace PgEvents.Benchmarks;

/// <summary>
/// A PgEvents consumer the way an application wires it (AddPgEvents, AddHandler, IEventConsumer),
/// run in the background of the benchmark process.
/// </summary>
internal sealed class ConsumerHost : IAsyncDisposable
{
    private readonly ServiceProvider _provider;
    private readonly CancellationTokenSource _stop = new();
    private Task? _run;

    private ConsumerHost(ServiceProvider provider)
    {
        _provider = provider;
        Consumer = provider.GetRequiredService<IEventConsumer>();
    }

    public IEventConsumer Consumer { get; }

    /// <summary>One registration of <typeparamref name="THandler"/> per table; <paramref name="state"/> is the handlers' shared singleton.</summary>
    public static ConsumerHost Create<THandler, TState>(string connectionString, string consumerName, int tables, TState state)
        where THandler : class, IRowHandler<BenchRow>
        where TState : class
    {
        var services = new ServiceCollection();
        services.AddSingleton(state);
        var builder = services.AddPgEvents(o =>
        {
            o.ConnectionString = connectionString;
            o.ConsumerName = consumerName;
            o.BatchSize = 500;
        });
        for (var t = 0; t < tables; t++)
        {
            builder.AddHandler<BenchRow, THandler>(new TableName("public", Designs.TableName(t)));
        }

        return new ConsumerHost(services.BuildServiceProvider());
    }

    public void Start() => _run = Task.Run(() => Consumer.RunAsync(_stop.Token));

    /// <summary>Waits until the consumer holds its lease and has loaded its cursor.</summary>
    public async Task WaitActiveAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!(await Consumer.GetStatusAsync()).IsActive)
        {
            ThrowIfStopped();
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"The consumer did not become active within {timeout.TotalSeconds:0} s.");
            }

            await Task.Delay(10);
        }
    }

    /// <summary>Surfaces a consumer that died instead of letting a wait loop spin until its timeout.</summary>
    public void ThrowIfStopped()
    {
        if (_run is { IsCompleted: true } run && !_stop.IsCancellationRequested)
        {
            run.GetAwaiter().GetResult();
            throw new InvalidOperationException("The consumer stopped on its own.");
        }
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        if (_run is not null)
        {
            await _run;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _provider.DisposeAsync();
        _stop.Dispose();
    }
}
