using System.Globalization;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// How the figures change with the size of the changed rows (write throughput, latency, catch-up),
/// with the size of transactions (catch-up) and with the size of the log already present (write
/// throughput and catch-up).
/// </summary>
internal static class ScaleBenchmark
{
    public static async Task RunAsync(PostgresServer server, Report report, bool quick, string? part)
    {
        report.Line("## 4. Scale");
        report.Line();
        if (part is null or "rowsize")
        {
            await WriteRowSizeAsync(server, report, quick);
            await LatencyRowSizeAsync(server, report, quick);
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

    /// <summary>
    /// Four writers of single-row INSERT transactions with growing rows. Baseline (a) cannot send a
    /// row over 8000 bytes through NOTIFY at all; the table says so instead of a figure.
    /// </summary>
    private static async Task WriteRowSizeAsync(PostgresServer server, Report report, bool quick)
    {
        const int Writers = 4;
        var duration = TimeSpan.FromSeconds(quick ? 2 : 5);
        var rounds = quick ? 1 : 2;
        int[] sizes = [100, 10_000, 1_000_000];
        report.Line($"### Row size: write throughput ({Writers} writers, single-row INSERT transactions/s, median of {rounds} rounds)");
        report.Line();
        var results = new Dictionary<(int, Design), List<double>>();
        var failures = new Dictionary<(int, Design), string>();
        foreach (var bytes in sizes)
        {
            for (var round = 0; round < rounds; round++)
            {
                foreach (var design in Designs.All)
                {
                    if (failures.ContainsKey((bytes, design)))
                    {
                        continue;
                    }

                    var connectionString = await WriteOverheadBenchmark.PrepareAsync(server, design, seedRows: 0);
                    try
                    {
                        var perSecond = await WriteOverheadBenchmark.MeasureAsync(connectionString, "INSERT", Writers, duration, payloadBytes: bytes);
                        (results.TryGetValue((bytes, design), out var list) ? list : results[(bytes, design)] = []).Add(perSecond);
                    }
                    catch (PostgresException e)
                    {
                        failures[(bytes, design)] = $"fails: {e.MessageText}";
                    }
                    finally
                    {
                        await server.DropDatabaseAsync(connectionString);
                    }
                }
            }
        }

        string Cell(int bytes, Design design) =>
            failures.TryGetValue((bytes, design), out var failure) ? failure : Format(Percentiles.Median(results[(bytes, design)]));

        string Ratio(int bytes, Design numerator, Design denominator) =>
            results.TryGetValue((bytes, numerator), out var n) && results.TryGetValue((bytes, denominator), out var d)
                ? (Percentiles.Median(n) / Percentiles.Median(d)).ToString("0.00", CultureInfo.InvariantCulture)
                : "-";

        report.Table(
            ["payload bytes", .. Designs.All.Select(Designs.Label), "pgevents ÷ (a)", "pgevents ÷ plain"],
            sizes.Select(bytes => (string[])[
                Format(bytes),
                .. Designs.All.Select(design => Cell(bytes, design)),
                Ratio(bytes, Design.PgEvents, Design.NotifyRow),
                Ratio(bytes, Design.PgEvents, Design.Plain),
            ]));
    }

    /// <summary>Idle commit-to-handler latency with growing rows, PgEvents against baseline (a).</summary>
    private static async Task LatencyRowSizeAsync(PostgresServer server, Report report, bool quick)
    {
        var rate = LatencyBenchmark.IdleEventsPerSecond;
        var duration = TimeSpan.FromSeconds(quick ? 3 : 10);
        int[] sizes = [100, 10_000, 1_000_000];
        report.Line($"### Row size: idle commit-to-handler latency ({rate} events/s for {duration.TotalSeconds:0} s, milliseconds)");
        report.Line();
        var rows = new List<string[]>();
        foreach (var bytes in sizes)
        {
            foreach (var receiver in new[] { LatencyBenchmark.Receiver.PgEvents, LatencyBenchmark.Receiver.NotifyRow })
            {
                try
                {
                    var (samples, _) = await LatencyBenchmark.MeasureAsync(server, receiver, rate, duration, bytes);
                    rows.Add([
                        Format(bytes), LatencyBenchmark.Label(receiver),
                        LatencyBenchmark.Format(Percentiles.Of(samples, 50)),
                        LatencyBenchmark.Format(Percentiles.Of(samples, 99)),
                        LatencyBenchmark.Format(Percentiles.Of(samples, 99.9)),
                    ]);
                }
                catch (PostgresException e)
                {
                    rows.Add([Format(bytes), LatencyBenchmark.Label(receiver), $"fails: {e.MessageText}", "-", "-"]);
                }
            }
        }

        report.Table(["payload bytes", "receiver", "p50", "p99", "p99.9"], rows);
    }

    private static async Task RowSizeAsync(PostgresServer server, Report report, bool quick)
    {
        report.Line("### Row size: catch-up into no-op handlers");
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
            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            if (size > 0)
            {
                for (var from = 1; from <= size; from += 100_000)
                {
                    await Designs.ExecuteAsync(dataSource,
                        $"INSERT INTO bench SELECT -g, repeat('x', 100), 1 FROM generate_series({from}, {Math.Min(size, from + 99_999)}) g");
                }

                // The history is settled, as it would be in production: vacuumed, analyzed, checkpointed,
                // so the measurement is the reader against a big log, not the server digesting a fresh load.
                await Designs.ExecuteAsync(dataSource, "VACUUM ANALYZE pgevents.events;\nVACUUM ANALYZE pgevents.transactions;\nCHECKPOINT");
            }

            var fillSeconds = fill.Elapsed.TotalSeconds;

            // A consumer that has read everything already: the log is history, not backlog.
            await Designs.ExecuteAsync(dataSource,
                "INSERT INTO pgevents.consumers (name, position, event_id) SELECT 'catchup', coalesce(max(position), 0), 9223372036854775807 FROM pgevents.transactions");

            var (_, perSecond) = await MeasureOnExistingAsync(connectionString);

            // Writers after the catch-up, so their fresh WAL and dead tuples do not weigh on it (ids
            // far above the catch-up batch).
            var writes = await WriteOverheadBenchmark.MeasureAsync(connectionString, "INSERT", 4, TimeSpan.FromSeconds(quick ? 2 : 5), idBase: 1_000_000_000);
            logRows.Add([Format(size), Format(writes), Format(perSecond), fillSeconds.ToString("0", CultureInfo.InvariantCulture)]);
            await server.DropDatabaseAsync(connectionString);
        }

        report.Table(["events already in log", "INSERT transactions/s, 4 writers", "catch-up events/s on 200k new events", "seconds to prepare the log"], logRows);
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
            .AddPgEvents(services, o => { o.ConnectionString = connectionString; o.ConsumerName = "catchup"; o.Retention.Age = null; })
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
