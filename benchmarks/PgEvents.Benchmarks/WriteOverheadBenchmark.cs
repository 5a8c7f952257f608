using System.Diagnostics;
using System.Globalization;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// What capture costs the writer: transactions/s of single-row autocommit INSERTs and UPDATEs at 1,
/// 4 and 16 writers, and the time of one bulk INSERT … SELECT, for each design. No consumer or
/// listener runs: this is the write path alone.
/// </summary>
internal static class WriteOverheadBenchmark
{
    private const int UpdateRows = 10_000;
    private static readonly int[] Concurrencies = [1, 4, 16];
    private static readonly string InsertPayload = new('x', 100);

    private enum Operation
    {
        Insert,
        Update,
    }

    private sealed record CellResult(double TransactionsPerSecond, IReadOnlyList<(string State, double Share)> Waits);

    public static async Task RunAsync(PostgresServer server, MarkdownReport report, BenchmarkProfile profile)
    {
        report.Heading("## 1. Write overhead");
        report.Paragraph(
            $"Single-row autocommit transactions, each writer on its own connection with a prepared statement, ~100 B payload. " +
            $"INSERTs use new ids; UPDATEs change the payload of a random row among {Fmt.N0(UpdateRows)}. Every cell runs in a fresh database: " +
            $"{profile.WriteWarmUp.TotalSeconds:0.#} s warm-up, then {profile.WriteDuration.TotalSeconds:0.#} s counted, " +
            $"{profile.WriteRounds} round(s) with the designs in alternating order (figures are the mean of the rounds; ± is half the spread). " +
            $"No consumer runs. {EnvironmentInfo.LoadNote(server)} at start.");

        var waits = new Dictionary<(Operation, int, Design), IReadOnlyList<(string, double)>>();
        foreach (var operation in Enum.GetValues<Operation>())
        {
            var results = await MeasureGridAsync(server, report, profile, operation, profile.WriteRounds, profile.WriteDuration, asyncCommit: false);
            report.Heading($"### {OperationLabel(operation)} transactions/s (durable commits)");
            WriteThroughputTable(report, results);
            foreach (var ((writers, design), cells) in results)
            {
                waits[(operation, writers, design)] = cells[0].Waits;
            }
        }

        report.Heading("### Where the writers' backends spend their time (pg_stat_activity samples every 20 ms, first round)");
        report.Table(
            ["operation, writers", .. Designs.All.Select(Designs.Label)],
            Enum.GetValues<Operation>().SelectMany(operation => Concurrencies.Select(writers => (IReadOnlyList<string>)[
                $"{OperationLabel(operation)}, {writers}",
                .. Designs.All.Select(d => WaitEventSampler.Describe(waits[(operation, writers, d)])),
            ])));
        report.Paragraph(
            "`Lock:object` is the lock on the database object that PostgreSQL takes in `PreCommit_Notify` and holds until the commit " +
            "record is flushed: every transaction that sends a NOTIFY queues there, so their commits (and WAL flushes) are serialized. " +
            "`IO:WALSync` / `LWLock:WALWrite` is the commit's flush itself; `client` is time between statements (driver, network, scheduling).");

        if (profile.AsyncCommitDuration > TimeSpan.Zero)
        {
            report.Heading("### Same, with synchronous_commit = off in the writer sessions (fast settings, same server)");
            report.Paragraph(
                $"Commits no longer wait for the WAL flush, so this shows the CPU cost of each design. One round, " +
                $"{profile.AsyncCommitDuration.TotalSeconds:0.#} s per cell.");
            foreach (var operation in Enum.GetValues<Operation>())
            {
                var results = await MeasureGridAsync(server, report, profile, operation, rounds: 1, profile.AsyncCommitDuration, asyncCommit: true);
                report.Line($"{OperationLabel(operation)} transactions/s, synchronous_commit = off:");
                report.Line();
                WriteThroughputTable(report, results);
            }
        }

        await MeasureBulkAsync(server, report, profile);
    }

    private static async Task<Dictionary<(int Writers, Design Design), List<CellResult>>> MeasureGridAsync(
        PostgresServer server, MarkdownReport report, BenchmarkProfile profile, Operation operation, int rounds, TimeSpan duration, bool asyncCommit)
    {
        var results = new Dictionary<(int, Design), List<CellResult>>();
        foreach (var writers in Concurrencies)
        {
            for (var round = 0; round < rounds; round++)
            {
                // Alternating the order cancels a drift (another process starting, the disk warming up) out of the ratios.
                var order = round % 2 == 0 ? Designs.All : Designs.All.Reverse().ToArray();
                foreach (var design in order)
                {
                    report.Progress($"write {operation} {writers} writer(s) {Designs.Label(design)} round {round + 1}{(asyncCommit ? " (async commit)" : string.Empty)}");
                    var cell = await MeasureCellAsync(server, design, operation, writers, profile.WriteWarmUp, duration, asyncCommit);
                    if (!results.TryGetValue((writers, design), out var list))
                    {
                        results[(writers, design)] = list = [];
                    }

                    list.Add(cell);
                }
            }
        }

        return results;
    }

    private static void WriteThroughputTable(MarkdownReport report, Dictionary<(int Writers, Design Design), List<CellResult>> results)
    {
        double Mean(int writers, Design design) => results[(writers, design)].Average(r => r.TransactionsPerSecond);
        string Cell(int writers, Design design)
        {
            var values = results[(writers, design)].Select(r => r.TransactionsPerSecond).ToArray();
            var mean = values.Average();
            return values.Length < 2 ? Fmt.N0(mean) : $"{Fmt.N0(mean)} ±{(values.Max() - values.Min()) / 2 / mean * 100:0}%";
        }

        report.Table(
            ["writers", .. Designs.All.Select(Designs.Label), "pgevents ÷ (a)", "pgevents ÷ plain", "(b) ÷ plain"],
            Concurrencies.Select(w => (IReadOnlyList<string>)[
                Fmt.Int(w),
                .. Designs.All.Select(d => Cell(w, d)),
                Fmt.Ratio(Mean(w, Design.PgEvents), Mean(w, Design.NotifyRow)),
                Fmt.Ratio(Mean(w, Design.PgEvents), Mean(w, Design.Plain)),
                Fmt.Ratio(Mean(w, Design.EventTable), Mean(w, Design.Plain)),
            ]));
    }

    private static async Task<CellResult> MeasureCellAsync(
        PostgresServer server, Design design, Operation operation, int writers, TimeSpan warmUp, TimeSpan duration, bool asyncCommit)
    {
        var connectionString = await server.CreateDatabaseAsync("write_" + design);
        try
        {
            await Designs.CreateAsync(connectionString, design);
            await using (var dataSource = NpgsqlDataSource.Create(connectionString))
            {
                if (operation == Operation.Update)
                {
                    await Designs.ExecuteAsync(dataSource,
                        $"INSERT INTO {Designs.Quote(Designs.Table)} (id, payload) SELECT g, left(repeat(md5(g::text), 4), 100) FROM generate_series(1, $1) g",
                        (long)UpdateRows);
                }

                await Designs.SettleAsync(dataSource, Designs.Quote(Designs.Table));
            }

            var connections = new List<NpgsqlConnection>();
            try
            {
                for (var w = 0; w < writers; w++)
                {
                    var connection = new NpgsqlConnection(connectionString);
                    await connection.OpenAsync();
                    if (asyncCommit)
                    {
                        await Designs.ExecuteAsync(connection, "SET synchronous_commit = off");
                    }

                    connections.Add(connection);
                }

                return await DriveAsync(connectionString, connections, operation, warmUp, duration, sampleWaits: !asyncCommit);
            }
            finally
            {
                foreach (var connection in connections)
                {
                    await connection.DisposeAsync();
                }
            }
        }
        finally
        {
            await server.DropDatabaseAsync(connectionString);
        }
    }

    private static async Task<CellResult> DriveAsync(
        string connectionString, List<NpgsqlConnection> connections, Operation operation, TimeSpan warmUp, TimeSpan duration, bool sampleWaits)
    {
        var nextId = 0L;
        var committed = 0L;
        var measuring = 0;
        using var stop = new CancellationTokenSource();

        async Task WriterAsync(NpgsqlConnection connection, int seed)
        {
            var random = new Random(seed);
            await using var command = operation == Operation.Insert
                ? new NpgsqlCommand($"INSERT INTO {Designs.Quote(Designs.Table)} (id, payload) VALUES ($1, $2)", connection)
                : new NpgsqlCommand($"UPDATE {Designs.Quote(Designs.Table)} SET payload = $2, updated_at = now() WHERE id = $1", connection);
            var id = new NpgsqlParameter<long>();
            var payload = new NpgsqlParameter<string> { TypedValue = InsertPayload };
            command.Parameters.Add(id);
            command.Parameters.Add(payload);
            await command.PrepareAsync();
            while (!stop.IsCancellationRequested)
            {
                if (operation == Operation.Insert)
                {
                    id.TypedValue = Interlocked.Increment(ref nextId);
                }
                else
                {
                    // A payload that really changes: an UPDATE that changes nothing is filtered by PgEvents' WHEN clause.
                    id.TypedValue = random.Next(1, UpdateRows + 1);
                    payload.TypedValue = string.Concat(InsertPayload.AsSpan(0, 90), random.Next(1_000_000_000).ToString("D10", CultureInfo.InvariantCulture));
                }

                await command.ExecuteNonQueryAsync(CancellationToken.None);
                if (Volatile.Read(ref measuring) == 1)
                {
                    Interlocked.Increment(ref committed);
                }
            }
        }

        var tasks = connections.Select((c, i) => Task.Run(() => WriterAsync(c, i + 1))).ToArray();
        await Task.Delay(warmUp);
        var sampler = sampleWaits ? WaitEventSampler.Start(connectionString) : null;
        Volatile.Write(ref measuring, 1);
        var clock = Stopwatch.StartNew();
        await Task.Delay(duration);
        Volatile.Write(ref measuring, 0);
        var elapsed = clock.Elapsed.TotalSeconds;
        var count = Interlocked.Read(ref committed);
        var waits = sampler is null ? [] : await sampler.StopAsync();
        if (sampler is not null)
        {
            await sampler.DisposeAsync();
        }

        await stop.CancelAsync();
        await Task.WhenAll(tasks);
        return new CellResult(count / elapsed, waits);
    }

    /// <summary>One INSERT … SELECT generate_series into an empty table, repeated with the designs rotated.</summary>
    private static async Task MeasureBulkAsync(PostgresServer server, MarkdownReport report, BenchmarkProfile profile)
    {
        var times = Designs.All.ToDictionary(d => d, _ => new List<double>());
        for (var repetition = 0; repetition < profile.BulkRepetitions; repetition++)
        {
            var order = Designs.All.Skip(repetition % Designs.All.Count).Concat(Designs.All.Take(repetition % Designs.All.Count));
            foreach (var design in order)
            {
                report.Progress($"write bulk {Designs.Label(design)} repetition {repetition + 1}");
                var connectionString = await server.CreateDatabaseAsync("bulk_" + design);
                try
                {
                    await Designs.CreateAsync(connectionString, design);
                    await using var dataSource = NpgsqlDataSource.Create(connectionString);
                    await Designs.SettleAsync(dataSource);
                    var clock = Stopwatch.StartNew();
                    await Designs.ExecuteAsync(dataSource,
                        $"INSERT INTO {Designs.Quote(Designs.Table)} (id, payload) SELECT g, left(repeat(md5(g::text), 4), 100) FROM generate_series(1, $1) g",
                        (long)profile.BulkRows);
                    times[design].Add(clock.Elapsed.TotalMilliseconds);
                }
                finally
                {
                    await server.DropDatabaseAsync(connectionString);
                }
            }
        }

        var plain = Percentiles.Median(times[Design.Plain]);
        report.Heading($"### One {Fmt.N0(profile.BulkRows)}-row INSERT … SELECT generate_series into an empty table (durable, median of {profile.BulkRepetitions})");
        report.Table(
            ["design", "ms (median)", "min – max", "÷ plain"],
            Designs.All.Select(d => (IReadOnlyList<string>)[
                Designs.Label(d),
                Fmt.N0(Percentiles.Median(times[d])),
                $"{Fmt.N0(times[d].Min())} – {Fmt.N0(times[d].Max())}",
                Fmt.Ratio(Percentiles.Median(times[d]), plain),
            ]));
    }

    private static string OperationLabel(Operation operation) => operation == Operation.Insert ? "INSERT" : "UPDATE";
}
