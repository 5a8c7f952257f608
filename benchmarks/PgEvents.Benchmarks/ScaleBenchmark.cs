using System.Globalization;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>How catch-up throughput changes with row size, and how writes and reads behave when the log already holds many events.</summary>
internal static class ScaleBenchmark
{
    public static async Task RunAsync(PostgresServer server, Report report, bool quick)
    {
        report.Line("## 4. Scale");
        report.Line();
        report.Line("### Row size (catch-up into no-op handlers)");
        report.Line();
        (int Bytes, int Events)[] sizes = quick ? [(100, 20_000), (10_000, 5_000), (1_000_000, 50)] : [(100, 200_000), (10_000, 20_000), (1_000_000, 200)];
        var rows = new List<string[]>();
        foreach (var (bytes, events) in sizes)
        {
            var (seconds, perSecond) = await CatchUpBenchmark.MeasureAsync(server, events, tables: 1, payloadBytes: bytes);
            rows.Add([
                bytes.ToString("N0", CultureInfo.InvariantCulture), events.ToString("N0", CultureInfo.InvariantCulture),
                seconds.ToString("0.00", CultureInfo.InvariantCulture), perSecond.ToString("N0", CultureInfo.InvariantCulture),
                (perSecond * bytes / 1_000_000).ToString("0.0", CultureInfo.InvariantCulture),
            ]);
        }

        report.Table(["payload bytes", "events", "seconds", "events/s", "MB/s"], rows);

        report.Line("### Log size (events already in the log, consumed)");
        report.Line();
        int[] logSizes = quick ? [0, 200_000] : [0, 1_000_000, 3_000_000];
        var logRows = new List<string[]>();
        foreach (var size in logSizes)
        {
            var connectionString = await server.CreateDatabaseAsync("logsize");
            await Designs.CreateAsync(connectionString, Design.PgEvents);
            if (size > 0)
            {
                await using var dataSource = NpgsqlDataSource.Create(connectionString);
                for (var from = 1; from <= size; from += 100_000)
                {
                    await Designs.ExecuteAsync(dataSource,
                        $"INSERT INTO bench SELECT -g, repeat('x', 100), 1 FROM generate_series({from}, {Math.Min(size, from + 99_999)}) g");
                }

                await Designs.ExecuteAsync(dataSource, "VACUUM ANALYZE pgevents.events;\nVACUUM ANALYZE pgevents.transactions");

                // A consumer that has read everything already: the log is history, not backlog.
                await Designs.ExecuteAsync(dataSource,
                    "INSERT INTO pgevents.consumers (name, position, event_id) SELECT 'catchup', max(position), 9223372036854775807 FROM pgevents.transactions");
            }

            var (seconds, perSecond) = await MeasureOnExistingAsync(connectionString);
            logRows.Add([
                size.ToString("N0", CultureInfo.InvariantCulture),
                perSecond.ToString("N0", CultureInfo.InvariantCulture),
            ]);
            await server.DropDatabaseAsync(connectionString);
        }

        report.Table(["events already in log", "catch-up events/s on 50k new events"], logRows);
    }

    private static async Task<(double, double)> MeasureOnExistingAsync(string connectionString)
    {
        const int events = 50_000;
        await using (var dataSource = NpgsqlDataSource.Create(connectionString))
        {
            for (var from = 1; from <= events; from += 1000)
            {
                await Designs.ExecuteAsync(dataSource, $"INSERT INTO bench SELECT g, repeat('x', 100), 1 FROM generate_series({from}, {from + 999}) g");
            }
        }

        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        Microsoft.Extensions.DependencyInjection.PgEventsServiceCollectionExtensions
            .AddPgEvents(services, o => { o.ConnectionString = connectionString; o.ConsumerName = "catchup"; o.RetentionAge = null; })
            .AddHandler<BenchRow, CountingHandler>("bench");
        await using var provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services);
        var consumer = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<IEventConsumer>(provider);
        using var stop = new CancellationTokenSource();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var run = Task.Run(() => consumer.RunAsync(stop.Token));
        while (CountingHandler.Count < events)
        {
            await Task.Delay(5);
        }

        var seconds = watch.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await run;
        CountingHandler.Reset();
        return (seconds, events / seconds);
    }
}
