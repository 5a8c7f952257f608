using System.Diagnostics;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>One catch-up measurement.</summary>
/// <param name="Events">Backlog delivered.</param>
/// <param name="Seconds">From <c>RunAsync</c> to the handler call for the last event.</param>
/// <param name="FirstEventSeconds">From <c>RunAsync</c> to the first handler call (start-up cost inside <see cref="Seconds"/>).</param>
internal sealed record CatchUpResult(long Events, double Seconds, double FirstEventSeconds)
{
    public double EventsPerSecond => Events / Seconds;
}

/// <summary>
/// Events per second delivered to no-op handlers when a consumer starts in front of a backlog. The
/// backlog is written with no consumer running; then the consumer starts and the clock runs until
/// the handler has been called for the last event (and the consumer's cursor is confirmed at the
/// head). Rows are deserialized into <see cref="BenchRow"/> before the handler is called.
/// </summary>
internal static class CatchUpBenchmark
{
    public static async Task RunAsync(PostgresServer server, MarkdownReport report, BenchmarkProfile profile)
    {
        report.Heading("## 3. Consumer throughput (catch-up into no-op handlers)");
        report.Paragraph(
            "The backlog is written first with the consumer stopped, then VACUUM ANALYZE and CHECKPOINT so that neither lands inside the " +
            "measurement; the clock starts when `RunAsync` is called and stops when the handler has seen the last event " +
            "(events/s includes the consumer's start-up). BatchSize 500, ~100 B payload, durable server. " +
            $"{EnvironmentInfo.LoadNote(server)} at start.");

        // The first consumer in the process pays for JIT compilation; that is not catch-up speed.
        report.Progress("catch-up warm-up");
        await MeasureInFreshDatabaseAsync(server, profile.Quick ? 5_000 : 20_000, tables: 1, perTransaction: 1000, Backlog.Payload(100));

        var rows = new List<IReadOnlyList<string>>();
        foreach (var (events, tables, perTransaction) in new[]
        {
            (profile.CatchUpEvents, 1, 1000),
            (profile.CatchUpEvents, 10, 1000),
            (profile.CatchUpSingleRowEvents, 1, 1),
        })
        {
            report.Progress($"catch-up {events} events, {tables} table(s), {perTransaction} per transaction");
            var (result, writeSeconds) = await MeasureInFreshDatabaseAsync(server, events, tables, perTransaction, Backlog.Payload(100));
            rows.Add([
                Fmt.N0(events), Fmt.Int(tables), Fmt.N0(perTransaction), Fmt.F1(writeSeconds),
                Fmt.F2(result.FirstEventSeconds), Fmt.F1(result.Seconds), Fmt.N0(result.EventsPerSecond),
            ]);
        }

        report.Table(["backlog events", "tables mapped", "events per transaction", "backlog written in s", "first event after s", "catch-up s", "events/s"], rows);
        report.Paragraph(
            "With several tables, every transaction writes an equal share to each table, so consecutive events go to different handler " +
            "registrations. The single-row-transaction backlog is written by a procedure that commits every row (with synchronous_commit " +
            "off for that session only, to prepare it quickly); it has one `transactions` row per event, the OLTP shape.");
    }

    public static async Task<(CatchUpResult Result, double WriteSeconds)> MeasureInFreshDatabaseAsync(
        PostgresServer server, long events, int tables, int perTransaction, string payload)
    {
        var connectionString = await server.CreateDatabaseAsync("catchup");
        try
        {
            await Designs.CreateAsync(connectionString, Design.PgEvents, tables);
            var write = Stopwatch.StartNew();
            if (perTransaction == 1)
            {
                await Backlog.WriteSingleRowTransactionsAsync(connectionString, 1, events, payload);
            }
            else
            {
                await Backlog.WriteAsync(connectionString, 1, events, perTransaction, tables, payload);
            }

            var writeSeconds = write.Elapsed.TotalSeconds;
            await using (var dataSource = NpgsqlDataSource.Create(connectionString))
            {
                await Designs.SettleAsync(dataSource, PgEventsTables);
            }

            return (await MeasureAsync(connectionString, events, tables, "catchup"), writeSeconds);
        }
        finally
        {
            await server.DropDatabaseAsync(connectionString);
        }
    }

    /// <summary>The log's tables, for VACUUM ANALYZE before a measurement.</summary>
    public static string[] PgEventsTables { get; } =
        [Designs.Quote("pgevents") + "." + Designs.Quote("events"), Designs.Quote("pgevents") + "." + Designs.Quote("transactions")];

    /// <summary>Starts consumer <paramref name="consumerName"/> and times it until it has delivered <paramref name="events"/> events.</summary>
    public static async Task<CatchUpResult> MeasureAsync(string connectionString, long events, int tables, string consumerName)
    {
        var counter = new DeliveryCounter();
        await using var host = ConsumerHost.Create<CountingHandler, DeliveryCounter>(connectionString, consumerName, tables, counter);

        // Idempotent here (the tables are tracked already), and kept out of the timed part.
        await host.Consumer.InstallAsync();
        counter.Reset(events);
        var start = Stopwatch.GetTimestamp();
        host.Start();
        var lastCount = 0L;
        var stalled = Stopwatch.StartNew();
        while (counter.ReachedAt == 0)
        {
            host.ThrowIfStopped();
            var count = counter.Count;
            if (count != lastCount)
            {
                lastCount = count;
                stalled.Restart();
            }
            else if (stalled.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"Catch-up stalled at {count:N0} of {events:N0} events.");
            }

            await Task.Delay(5);
        }

        var seconds = Stopwatch.GetElapsedTime(start, counter.ReachedAt).TotalSeconds;

        // The handler saw the last event; confirm that the consumer's cursor is at the head of the log.
        var status = await host.Consumer.GetStatusAsync();
        for (var attempt = 0; status.LagEvents != 0 && attempt < 100; attempt++)
        {
            await Task.Delay(20);
            status = await host.Consumer.GetStatusAsync();
        }

        if (status.LagEvents != 0 || status.CursorPosition != status.HeadPosition)
        {
            throw new InvalidOperationException($"The handler saw {events:N0} events but the cursor is not at the head: {status}.");
        }

        return new CatchUpResult(events, seconds, Stopwatch.GetElapsedTime(start, counter.FirstAt).TotalSeconds);
    }
}
