using System.Diagnostics;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// How write cost, catch-up throughput and latency change with the size of a row, and with the
/// number of events already in the log.
/// </summary>
internal static class ScaleBenchmark
{
    public static async Task RunAsync(PostgresServer server, MarkdownReport report, BenchmarkProfile profile)
    {
        report.Heading("## 4. Scale");
        report.Paragraph($"{EnvironmentInfo.LoadNote(server)} at start.");
        await RowSizeAsync(server, report, profile);
        await LogSizeAsync(server, report, profile);
    }

    private static async Task RowSizeAsync(PostgresServer server, MarkdownReport report, BenchmarkProfile profile)
    {
        report.Heading("### Row size");
        report.Paragraph(
            "Payloads are random base64 (incompressible, so TOAST compression does not flatter large rows). Write: one writer, " +
            $"single-row autocommit INSERTs for {profile.ScaleWriteDuration.TotalSeconds:0} s in a fresh database per design. " +
            "Catch-up: as in section 3, in transactions of at most 1,000 rows and 10 MB. " +
            $"Latency: pgevents at the rate shown, 2 writers, {profile.ScaleLatencyDuration.TotalSeconds:0} s.");
        var rows = new List<IReadOnlyList<string>>();
        foreach (var (bytes, events, latencyRate) in profile.RowSizes)
        {
            var payload = Backlog.Payload(bytes);
            var writes = new Dictionary<Design, (double PerSecond, string? Error)>();
            foreach (var design in new[] { Design.Plain, Design.PgEvents, Design.NotifyRow })
            {
                report.Progress($"scale row size {Fmt.Size(bytes)} write {Designs.Label(design)}");
                writes[design] = await SingleWriterInFreshDatabaseAsync(server, design, payload, profile.ScaleWriteDuration);
            }

            report.Progress($"scale row size {Fmt.Size(bytes)} catch-up");
            var perTransaction = Math.Clamp(10_000_000 / bytes, 2, 1000);
            var (catchUp, _) = await CatchUpBenchmark.MeasureInFreshDatabaseAsync(server, events, tables: 1, perTransaction, payload);

            report.Progress($"scale row size {Fmt.Size(bytes)} latency");
            var latency = await LatencyBenchmark.MeasureInFreshDatabaseAsync(
                server, ReceiverKind.PgEvents, latencyRate, writers: 2, warmUp: TimeSpan.FromSeconds(1), profile.ScaleLatencyDuration, payload);

            string Write(Design design) => writes[design].Error ?? Fmt.N0(writes[design].PerSecond);
            rows.Add([
                Fmt.Size(bytes), Write(Design.Plain), Write(Design.PgEvents), Write(Design.NotifyRow),
                Fmt.Ratio(writes[Design.PgEvents].PerSecond, writes[Design.Plain].PerSecond),
                Fmt.N0(events), Fmt.N0(catchUp.EventsPerSecond), Fmt.F1(catchUp.EventsPerSecond * bytes / 1_000_000),
                $"{latencyRate}/s ({Fmt.N0(latency.Writes.Achieved)})", Fmt.Ms(latency.Latency.P50), Fmt.Ms(latency.Latency.P99), Fmt.Ms(latency.Latency.Max),
            ]);
        }

        report.Table(
            ["payload", "INSERT tx/s plain", "pgevents", "(a) notify-row", "pgevents ÷ plain", "catch-up events", "events/s", "payload MB/s",
             "latency rate (achieved)", "p50 ms", "p99 ms", "max ms"],
            rows);
    }

    /// <summary>
    /// One log that grows stage by stage (the tracked table is emptied as it goes, so only the log
    /// grows); at each stage the consumers are moved to the head and write cost, latency and
    /// catch-up of new events are measured.
    /// </summary>
    private static async Task LogSizeAsync(PostgresServer server, MarkdownReport report, BenchmarkProfile profile)
    {
        report.Heading("### Log size (events already in the log, all consumed)");
        var connectionString = await server.CreateDatabaseAsync("logsize");
        var rows = new List<IReadOnlyList<string>>();
        try
        {
            await Designs.CreateAsync(connectionString, Design.PgEvents);
            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            var payload = Backlog.Payload(100);
            var nextId = 1L;
            var inLog = 0L;
            var fillBudget = Stopwatch.StartNew();
            var fillSeconds = 0.0;
            foreach (var target in profile.LogSizes)
            {
                // Fill in 100k-row transactions, emptying the table after each so only the log grows.
                var fill = Stopwatch.StartNew();
                var budgetHit = false;
                while (inLog < target)
                {
                    if (fillBudget.Elapsed > profile.LogFillBudget)
                    {
                        budgetHit = true;
                        break;
                    }

                    var chunk = Math.Min(100_000, target - inLog);
                    report.Progress($"scale log size: filling {Fmt.N0(inLog)} → {Fmt.N0(target)}");
                    await Backlog.WriteAsync(connectionString, nextId, chunk, perTransaction: 100_000, tables: 1, payload);
                    await Designs.ExecuteAsync(dataSource, "TRUNCATE " + Designs.Quote(Designs.Table));
                    nextId += chunk;
                    inLog += chunk + 1;
                }

                fillSeconds += fill.Elapsed.TotalSeconds;
                if (budgetHit)
                {
                    report.Paragraph($"Filling stopped at {Fmt.N0(inLog)} events: the fill budget of {profile.LogFillBudget.TotalMinutes:0} min was used up before {Fmt.N0(target)}.");
                }

                report.Progress($"scale log size {Fmt.N0(inLog)}: vacuum");
                var vacuum = Stopwatch.StartNew();
                await Designs.SettleAsync(dataSource, CatchUpBenchmark.PgEventsTables);
                var vacuumSeconds = vacuum.Elapsed.TotalSeconds;
                var exactEvents = await ScalarAsync<long>(dataSource, "SELECT count(*) FROM \"pgevents\".\"events\"");
                var size = await ScalarAsync<long>(dataSource,
                    "SELECT pg_total_relation_size('\"pgevents\".\"events\"') + pg_total_relation_size('\"pgevents\".\"transactions\"')");

                report.Progress($"scale log size {Fmt.N0(exactEvents)}: write");
                var write = await SingleWriterAsync(connectionString, payload, nextId, profile.ScaleWriteDuration);
                nextId += 1_000_000;
                await Designs.ExecuteAsync(dataSource, "TRUNCATE " + Designs.Quote(Designs.Table));

                // Everything already in the log is history, not backlog.
                report.Progress($"scale log size {Fmt.N0(exactEvents)}: latency");
                await SkipToHeadAsync(connectionString, "latency");
                var latency = await LatencyBenchmark.MeasureAsync(
                    connectionString, ReceiverKind.PgEvents, 200, profile.LatencyWriters, TimeSpan.FromSeconds(1), profile.ScaleLatencyDuration, payload, nextId);
                nextId += 2_000_000_000;
                await Designs.ExecuteAsync(dataSource, "TRUNCATE " + Designs.Quote(Designs.Table));

                report.Progress($"scale log size {Fmt.N0(exactEvents)}: catch-up");
                await SkipToHeadAsync(connectionString, "catchup");
                await Backlog.WriteAsync(connectionString, nextId, profile.LogCatchUpEvents, perTransaction: 1000, tables: 1, payload);
                nextId += profile.LogCatchUpEvents;
                await Designs.SettleAsync(dataSource, CatchUpBenchmark.PgEventsTables);
                var catchUp = await CatchUpBenchmark.MeasureAsync(connectionString, profile.LogCatchUpEvents, tables: 1, "catchup");
                await Designs.ExecuteAsync(dataSource, "TRUNCATE " + Designs.Quote(Designs.Table));
                inLog = await ScalarAsync<long>(dataSource, "SELECT count(*) FROM \"pgevents\".\"events\"");

                rows.Add([
                    Fmt.N0(exactEvents), Fmt.Bytes(size), Fmt.F1(fillSeconds), Fmt.F1(vacuumSeconds),
                    Fmt.N0(write),
                    $"{Fmt.Ms(latency.Latency.P50)} / {Fmt.Ms(latency.Latency.P99)} ({Fmt.N0(latency.Writes.Achieved)}/s)",
                    Fmt.N0(catchUp.EventsPerSecond),
                ]);
                if (budgetHit)
                {
                    break;
                }
            }
        }
        finally
        {
            await server.DropDatabaseAsync(connectionString);
        }

        report.Table(
            ["events in log", "log size on disk", "fill s (cumulative)", "VACUUM ANALYZE s", "1-writer INSERT tx/s", "latency p50 / p99 ms at 200/s",
             $"catch-up events/s ({Fmt.N0(profile.LogCatchUpEvents)} new events)"],
            rows);
        report.Paragraph(
            "The log is filled through the capture trigger with 100k-row INSERT … SELECT transactions (the tracked table is truncated after " +
            "each, so it stays small and only the log grows). Both consumers are moved to the head with `ResetCursorAsync` before measuring, " +
            "so the old events are history, not backlog.");
    }

    /// <summary>Moves a consumer's cursor past everything in the log, through the public API.</summary>
    private static async Task SkipToHeadAsync(string connectionString, string consumerName)
    {
        await using var host = ConsumerHost.Create<CountingHandler, DeliveryCounter>(connectionString, consumerName, tables: 1, new DeliveryCounter());

        // No transaction committed after tomorrow: the reset falls back to the newest position.
        await host.Consumer.ResetCursorAsync(DateTimeOffset.UtcNow.AddDays(1));
    }

    private static async Task<(double PerSecond, string? Error)> SingleWriterInFreshDatabaseAsync(
        PostgresServer server, Design design, string payload, TimeSpan duration)
    {
        var connectionString = await server.CreateDatabaseAsync("rowsize_" + design);
        try
        {
            await Designs.CreateAsync(connectionString, design);
            await using (var dataSource = NpgsqlDataSource.Create(connectionString))
            {
                await Designs.SettleAsync(dataSource);
            }

            return (await SingleWriterAsync(connectionString, payload, 1, duration), null);
        }
        catch (PostgresException e)
        {
            return (double.NaN, $"fails: {e.MessageText}");
        }
        finally
        {
            await server.DropDatabaseAsync(connectionString);
        }
    }

    /// <summary>Single-row autocommit INSERTs from one connection: a short warm-up, then transactions/s.</summary>
    private static async Task<double> SingleWriterAsync(string connectionString, string payload, long firstId, TimeSpan duration)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var insert = new NpgsqlCommand($"INSERT INTO {Designs.Quote(Designs.Table)} (id, payload) VALUES ($1, $2)", connection);
        var id = new NpgsqlParameter<long> { TypedValue = firstId };
        insert.Parameters.Add(id);
        insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload });
        await insert.PrepareAsync();
        var warmUp = Stopwatch.StartNew();
        while (warmUp.Elapsed < TimeSpan.FromSeconds(0.5))
        {
            await insert.ExecuteNonQueryAsync();
            id.TypedValue++;
        }

        var count = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            await insert.ExecuteNonQueryAsync();
            id.TypedValue++;
            count++;
        }

        return count / clock.Elapsed.TotalSeconds;
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        command.CommandTimeout = 0;
        return (T)(await command.ExecuteScalarAsync())!;
    }
}
