using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace PgEvents.Benchmarks;

/// <summary>
/// Runs the consumer configured in a service collection in front of a backlog until its handlers have
/// counted every change (<see cref="CountingHandler"/>), and times it from consumer start.
/// </summary>
internal static class ConsumerDrain
{
    /// <summary>Seconds until <paramref name="events"/> were counted, and how many were (fewer only if the consumer died).</summary>
    public static async Task<(double Seconds, long Delivered)> RunAsync(IServiceCollection services, int events)
    {
        CountingHandler.Reset();
        await using var provider = services.BuildServiceProvider();
        var consumer = provider.GetRequiredService<IEventConsumer>();
        await consumer.InstallAsync();
        using var stop = new CancellationTokenSource();
        var watch = Stopwatch.StartNew();
        var run = Task.Run(() => consumer.RunAsync(stop.Token));
        while (CountingHandler.Count < events && !run.IsCompleted)
        {
            await Task.Delay(5);
        }

        var seconds = watch.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await run;
        var delivered = CountingHandler.Count;
        CountingHandler.Reset();
        return (seconds, delivered);
    }
}
