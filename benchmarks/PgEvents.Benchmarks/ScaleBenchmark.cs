using System.Globalization;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>How catch-up throughput changes with row size, and how writes and reads behave when the log already holds many events.</summary>
internal static class ScaleBenchmark
{
    public static async Task RunAsync(PostgresServer server, Report report, bool quick, string? part)
    {
        report.Line("## 4. Scale");
        report.Line();
        if (part is null or "rowsize")
        {
            await RowSizeAsync(server, report, quick);
        }

        if (part is null or "txsize")
        {
            await TransactionSizeAsync(server, report, quick);
        }

        if (part is null or "logsize")
        {
            await LogSizeAsync(server, report, quick);
        }
    }

    private static async Task RowSizeAsync(PostgresServer server, Report report, bool quick)
    {
        report.Line("### Row size (catch-up into no-op handlers)");
        report.Line();
        (int Bytes, int Events)[] sizes = quick ? [(100, 20_000), (10_000, 5_000), (1_000_000, 50)] : [(100, 200_000), (10_000, 20_000), (1_000_000, 200)];
        var rows = new List<string[]>();
        foreach (var (bytes, events) in sizes)
        {
            var (seconds, perSecond) = await CatchUpBenchmark.MeasureAsync(server, events, tables: 1, payloadBytes: bytes);
            rows.Add([
                Format(bytes), Format(events), seconds.ToString("0.00", CultureInfo.InvariantCulture), Format(perSecond),
                (perSecond * bytes / 1_000_000).ToString("0.0", CultureInfo.InvariantCulture),
            ]);
        }

        report.Table(["payload bytes", "events", "seconds", "events/s", "MB/s"], rows);
    }

    /// <summary>
    /// A bulk import lands as one huge transaction; the consumer then reads it in many batches, each
    /// starting in the middle of that transaction. Each read must cost the batch, not the part of the
    /// transaction already delivered.
    /// </summary>
    private static async Task TransactionSizeAsync(PostgresServer server, Report report, bool quick)
    {
        report.Line("### Transaction size (catch-up into no-op handlers, 100 B rows)");
        report.Line();
        var events = quick ? 50_000 : 200_000;
        int[] sizes = [10, 1_000, events];
        var rows = new List<string[]>();
        foreach (var size in sizes)
        {
            var (seconds, perSecond) = await CatchUpBenchmark.MeasureAsync(server, events, tables: 1, payloadBytes: 100, rowsPerTransaction: size);
            rows.Add([Format(size), Format(events), seconds.ToString("0.00", CultureInfo.InvariantCulture), Format(perSecond)]);
        }

        report.Table(["rows per transaction", "events", "seconds", "events/s"], rows);
    }

    private static async Task LogSizeAsync(PostgresServer server, Report report, bool quick)
    {
        report.Line("### Log size (events already in the log, consumed)");
        report.Line();
        int[] logSizes = quick ? [0, 200_000] : [0, 1_000_000, 10_000_000];
        var logRows = new List<string[]>();
        foreach (var size in logSizes)
        {
            var connectionString = await server.CreateDatabaseAsync("logsize");
            await Designs.CreateAsync(connectionString, Design.PgEvents);
            var fill = System.Diagnostics.Stopwatch.StartNew();
            if (size > 0)
            {
                await using var dataSource = NpgsqlDataSource.Create(connectionString);
                for (var from = 1; from <= size; from += 100_000)
                {
                    await Designs.ExecuteAsync(dataSource,
                        $"INSERT INTO bench SELECT -g, repeat('x', 100), 1 FROM generate_series({from}, {Math.Min(size, from + 99_999)}) g");
                }

                // The history is settled, as it would be in production: vacuumed, analyzed, checkpointed,
                // so the measurement is the reader against a big log, not the server digesting a fresh load.
                await Designs.ExecuteAsync(dataSource, "VACUUM ANALYZE pgevents.events;\nVACUUM ANALYZE pgevents.transactions;\nCHECKPOINT");

                // A consumer that has read everything already: the log is history, not backlog.
                await Designs.ExecuteAsync(dataSource,
                    "INSERT INTO pgevents.consumers (name, position, event_id) SELECT 'catchup', max(position), 9223372036854775807 FROM pgevents.transactions");
            }

            var fillSeconds = fill.Elapsed.TotalSeconds;
            var (_, perSecond) = await MeasureOnExistingAsync(connectionString);
            logRows.Add([Format(size), Format(perSecond), fillSeconds.ToString("0", CultureInfo.InvariantCulture)]);
            await server.DropDatabaseAsync(connectionString);
        }

        report.Table(["events already in log", "catch-up events/s on 200k new events", "seconds to prepare the log"], logRows);
    }

    private static string Format(double value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static async Task<(double, double)> MeasureOnExistingAsync(string connectionString)
    {
        const int events = 200_000;
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
