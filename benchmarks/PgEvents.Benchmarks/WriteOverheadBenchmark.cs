using System.Diagnostics;
using System.Globalization;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// Transactions per second of single-row INSERT and UPDATE transactions at 1, 4 and 16 writers, and
/// the time of one 100k-row INSERT … SELECT, for each design, each in a fresh database on one server.
/// Designs run back to back per concurrency so that ratios compare like with like.
/// </summary>
internal static class WriteOverheadBenchmark
{
    private static readonly string Payload = new('x', 100);

    public static async Task RunAsync(PostgresServer server, Report report, bool quick)
    {
        var duration = TimeSpan.FromSeconds(quick ? 2 : 5);
        var rounds = quick ? 1 : 3;
        int[] concurrencies = [1, 4, 16];
        report.Line("## 1. Write overhead");
        report.Line();
        report.Line(
            $"Single-row autocommit transactions, {duration.TotalSeconds:0} s per cell after a 1 s warm-up, ~100 B payload; " +
            $"{rounds} rounds, each running every design back to back in a rotated order. Figures are medians; the ratios are " +
            "medians of the ratios within a round, with their range across rounds.");
        report.Line();

        foreach (var operation in new[] { "INSERT", "UPDATE" })
        {
            var results = new Dictionary<(Design, int), List<double>>();
            foreach (var writers in concurrencies)
            {
                for (var round = 0; round < rounds; round++)
                {
                    // Rotating the order keeps a slow spell of the machine from always landing on the same design.
                    var order = Designs.All.Skip(round % Designs.All.Length).Concat(Designs.All.Take(round % Designs.All.Length));
                    foreach (var design in order)
                    {
                        var connectionString = await PrepareAsync(server, design);
                        var perSecond = await MeasureAsync(connectionString, operation, writers, duration);
                        await server.DropDatabaseAsync(connectionString);
                        (results.TryGetValue((design, writers), out var list) ? list : results[(design, writers)] = []).Add(perSecond);
                    }
                }
            }

            report.Line($"### {operation} transactions/s");
            report.Line();
            report.Table(
                ["writers", .. Designs.All.Select(Designs.Label), "pgevents ÷ (a)", "pgevents ÷ plain"],
                concurrencies.Select(w => (string[])[
                    w.ToString(CultureInfo.InvariantCulture),
                    .. Designs.All.Select(d => Percentiles.Median(results[(d, w)]).ToString("N0", CultureInfo.InvariantCulture)),
                    RatioCell(results[(Design.PgEvents, w)], results[(Design.NotifyRow, w)]),
                    RatioCell(results[(Design.PgEvents, w)], results[(Design.Plain, w)]),
                ]));
        }

        await WhereTheTimeGoesAsync(server, report, duration);

        var bulk = new Dictionary<Design, double>();
        foreach (var design in Designs.All)
        {
            var best = double.MaxValue;
            for (var run = 0; run < 2; run++)
            {
                var connectionString = await PrepareAsync(server, design, seedRows: 0);
                await using var dataSource = NpgsqlDataSource.Create(connectionString);
                var watch = Stopwatch.StartNew();
                await Designs.ExecuteAsync(dataSource, "INSERT INTO bench SELECT g, repeat('x', 100), 0 FROM generate_series(1, 100000) g");
                best = Math.Min(best, watch.Elapsed.TotalMilliseconds);
                await server.DropDatabaseAsync(connectionString);
            }

            bulk[design] = best;
        }

        report.Line("### One 100k-row INSERT … SELECT (best of 2)");
        report.Line();
        report.Table(
            ["design", "ms", "÷ plain"],
            Designs.All.Select(d => (string[])[
                Designs.Label(d),
                bulk[d].ToString("N0", CultureInfo.InvariantCulture),
                (bulk[d] / bulk[Design.Plain]).ToString("0.00", CultureInfo.InvariantCulture),
            ]));
    }

    /// <summary>
    /// Splits the write overhead in two. With commits not waiting for the disk, one writer measures
    /// the server time each design adds to a transaction. With NOTIFY removed from PgEvents, 16
    /// durable writers show how much of the gap comes from NOTIFY serializing commits.
    /// </summary>
    private static async Task WhereTheTimeGoesAsync(PostgresServer server, Report report, TimeSpan duration)
    {
        Design[] designs = [.. Designs.All, Design.PgEventsWithoutNotify];
        var cpu = new Dictionary<Design, double>();
        var contended = new Dictionary<Design, double>();
        foreach (var design in designs)
        {
            var connectionString = await PrepareAsync(server, design);
            var noFlush = new NpgsqlConnectionStringBuilder(connectionString) { Options = "-c synchronous_commit=off" }.ConnectionString;
            cpu[design] = await MeasureAsync(noFlush, "INSERT", 1, duration);
            await server.DropDatabaseAsync(connectionString);

            connectionString = await PrepareAsync(server, design);
            contended[design] = await MeasureAsync(connectionString, "INSERT", 16, duration);
            await server.DropDatabaseAsync(connectionString);
        }

        report.Line("### Where the time goes (INSERT)");
        report.Line();
        report.Table(
            ["design", "µs per transaction, 1 writer, commit not waiting for the disk", "transactions/s, 16 durable writers"],
            designs.Select(d => (string[])[
                Designs.Label(d),
                (1_000_000 / cpu[d]).ToString("0", CultureInfo.InvariantCulture),
                contended[d].ToString("N0", CultureInfo.InvariantCulture),
            ]));
    }

    internal static async Task<string> PrepareAsync(PostgresServer server, Design design, int seedRows = 10_000)
    {
        var connectionString = await server.CreateDatabaseAsync("write_" + design);
        await Designs.CreateAsync(connectionString, design);
        if (seedRows > 0)
        {
            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            await Designs.ExecuteAsync(dataSource, $"INSERT INTO bench SELECT -g, repeat('s', 100), 0 FROM generate_series(1, {seedRows}) g;\nVACUUM ANALYZE bench");
        }

        return new NpgsqlConnectionStringBuilder(connectionString) { MaxAutoPrepare = 10, MaxPoolSize = 64 }.ConnectionString;
    }

    internal static async Task<double> MeasureAsync(
        string connectionString, string operation, int writers, TimeSpan duration, int payloadBytes = 100, long idBase = 0)
    {
        var insertPayload = payloadBytes == Payload.Length ? Payload : Payloads.Incompressible(payloadBytes, seed: payloadBytes);
        var nextId = idBase;
        var committed = 0L;
        var measuring = false;
        using var stop = new CancellationTokenSource();

        async Task WriterAsync(int writer)
        {
            var random = new Random(writer);
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var command = operation == "INSERT"
                ? new NpgsqlCommand("INSERT INTO bench (id, payload, started) VALUES (@id, @payload, 0)", connection)
                : new NpgsqlCommand("UPDATE bench SET payload = @payload, updated_at = now() WHERE id = @id", connection);
            var id = new NpgsqlParameter<long>("id", 0L); command.Parameters.Add(id);
            var payload = new NpgsqlParameter<string>("payload", insertPayload); command.Parameters.Add(payload);
            while (!stop.IsCancellationRequested)
            {
                id.TypedValue = operation == "INSERT" ? Interlocked.Increment(ref nextId) : -random.Next(1, 10_001);
                payload.TypedValue = operation == "INSERT" ? insertPayload : Payload[..90] + random.Next(1_000_000_000).ToString("D10", CultureInfo.InvariantCulture);
                await command.ExecuteNonQueryAsync();
                if (Volatile.Read(ref measuring))
                {
                    Interlocked.Increment(ref committed);
                }
            }
        }

        var tasks = Enumerable.Range(0, writers).Select(w => Task.Run(() => WriterAsync(w))).ToArray();
        await Task.Delay(TimeSpan.FromSeconds(1));
        Volatile.Write(ref measuring, true);
        var watch = Stopwatch.StartNew();
        await Task.Delay(duration);
        Volatile.Write(ref measuring, false);
        var elapsed = watch.Elapsed.TotalSeconds;
        var count = Interlocked.Read(ref committed);
        await stop.CancelAsync();
        await Task.WhenAll(tasks);
        return count / elapsed;
    }

    /// <summary>The median of the per-round ratios, and their range when there was more than one round.</summary>
    private static string RatioCell(IReadOnlyList<double> numerators, IReadOnlyList<double> denominators)
    {
        var ratios = numerators.Zip(denominators, (n, d) => n / d).ToArray();
        var median = Percentiles.Median(ratios).ToString("0.00", CultureInfo.InvariantCulture);
        return ratios.Length == 1
            ? median
            : $"{median} ({ratios.Min().ToString("0.00", CultureInfo.InvariantCulture)}–{ratios.Max().ToString("0.00", CultureInfo.InvariantCulture)})";
    }
}
