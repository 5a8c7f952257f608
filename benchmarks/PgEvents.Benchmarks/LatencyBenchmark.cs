using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// Commit-to-handler latency at steady write rates. The clock starts just before the writer sends
/// its autocommit INSERT (the timestamp travels in the row) and stops when the consumer's handler
/// (or the LISTEN callback, or the poller) sees the row, so commit time is included.
/// </summary>
internal static class LatencyBenchmark
{
    private const int Writers = 4;
    private const int IdleRate = 20;

    internal enum Receiver
    {
        PgEvents,
        NotifyRow,
        PollEvery1s,
        PollEvery100ms,
    }

    public static async Task RunAsync(PostgresServer server, Report report, bool quick)
    {
        // 20 events/s from one writer is the idle case: every event finds the consumer waiting.
        int[] rates = quick ? [IdleRate, 200, 1000] : [IdleRate, 200, 1000, 5000];
        var duration = TimeSpan.FromSeconds(quick ? 2 : 5);
        report.Line("## 2. Latency, commit to handler");
        report.Line();
        report.Line($"Paced single-row INSERTs from {Writers} connections (one at {IdleRate}/s, the idle case) for {duration.TotalSeconds:0} s per cell after 1 s of warm-up; milliseconds.");
        report.Line();
        var rows = new List<string[]>();
        foreach (var rate in rates)
        {
            foreach (var receiver in Enum.GetValues<Receiver>())
            {
                var (samples, achieved) = await MeasureAsync(server, receiver, rate, rate == IdleRate ? duration * 5 : duration);
                rows.Add([
                    rate.ToString(CultureInfo.InvariantCulture),
                    Label(receiver),
                    achieved.ToString("N0", CultureInfo.InvariantCulture),
                    Format(Percentiles.Of(samples, 50)),
                    Format(Percentiles.Of(samples, 99)),
                    Format(Percentiles.Of(samples, 99.9)),
                ]);
            }
        }

        report.Table(["target events/s", "receiver", "achieved events/s", "p50", "p99", "p99.9"], rows);
    }

    internal const int IdleEventsPerSecond = IdleRate;

    internal static string Label(Receiver receiver) => receiver switch
    {
        Receiver.PgEvents => "pgevents",
        Receiver.NotifyRow => "(a) notify-row",
        Receiver.PollEvery1s => "(b) poll 1 s",
        _ => "(b) poll 100 ms",
    };

    internal static string Format(double value) => double.IsNaN(value) ? "-" : value.ToString("0.0", CultureInfo.InvariantCulture);

    internal static async Task<(IReadOnlyCollection<double> Samples, double Achieved)> MeasureAsync(
        PostgresServer server, Receiver receiver, int rate, TimeSpan duration, int payloadBytes = 100)
    {
        var design = receiver switch
        {
            Receiver.PgEvents => Design.PgEvents,
            Receiver.NotifyRow => Design.NotifyRow,
            _ => Design.EventTable,
        };
        var connectionString = await server.CreateDatabaseAsync("latency_" + receiver);
        await Designs.CreateAsync(connectionString, design);
        var recorder = new LatencyRecorder();
        using var stopReceiving = new CancellationTokenSource();
        await using var receiving = await StartReceiverAsync(receiver, connectionString, recorder, stopReceiving.Token);
        long sent;
        try
        {
            // One second of traffic first, not counted: JIT, caches and plans warm up in every receiver.
            await WriteAtRateAsync(connectionString, rate, TimeSpan.FromSeconds(1), idOffset: 0, payloadBytes);
            var warmUp = Stopwatch.StartNew();
            while (recorder.Received < rate * 0.9 && warmUp.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(10);
            }

            recorder.Clear();
            sent = await WriteAtRateAsync(connectionString, rate, duration, idOffset: 10_000_000, payloadBytes);
            var deadline = Stopwatch.StartNew();
            while (recorder.Received < sent && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(10);
            }
        }
        finally
        {
            // Also when a writer failed (baseline (a) refuses rows over 8000 bytes): the receiver must stop before it is disposed.
            await stopReceiving.CancelAsync();
            await server.DropDatabaseAsync(connectionString);
        }

        return (recorder.Samples, sent / duration.TotalSeconds);
    }

    private static async Task<IAsyncDisposable> StartReceiverAsync(Receiver receiver, string connectionString, LatencyRecorder recorder, CancellationToken stop)
    {
        switch (receiver)
        {
            case Receiver.PgEvents:
                var services = new ServiceCollection();
                services.AddSingleton(recorder);
                services.AddPgEvents(o => { o.ConnectionString = connectionString; o.ConsumerName = "latency"; })
                    .AddHandler<BenchRow, RecordingBenchHandler>("bench");
                var provider = services.BuildServiceProvider();
                var consumer = provider.GetRequiredService<IEventConsumer>();
                await consumer.InstallAsync(stop);
                var run = Task.Run(() => consumer.RunAsync(stop), CancellationToken.None);
                await WaitActiveAsync(consumer);
                return new Stopper(async () => { await run; await provider.DisposeAsync(); });
            case Receiver.NotifyRow:
                var listener = new NpgsqlConnection(connectionString);
                await listener.OpenAsync(stop);
                listener.Notification += (_, e) => recorder.Record(JsonDocument.Parse(e.Payload).RootElement.GetProperty("started").GetInt64());
                await using (var listen = new NpgsqlCommand("LISTEN bench_a", listener))
                {
                    await listen.ExecuteNonQueryAsync(stop);
                }

                var waiting = Task.Run(async () =>
                {
                    try
                    {
                        while (true)
                        {
                            await listener.WaitAsync(stop);
                        }
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }, CancellationToken.None);
                return new Stopper(async () => { await waiting; await listener.DisposeAsync(); });
            default:
                var interval = receiver == Receiver.PollEvery1s ? TimeSpan.FromSeconds(1) : TimeSpan.FromMilliseconds(100);
                var polling = Task.Run(() => PollAsync(connectionString, interval, recorder, stop), CancellationToken.None);
                return new Stopper(async () => await polling);
        }
    }

    private static async Task PollAsync(string connectionString, TimeSpan interval, LatencyRecorder recorder, CancellationToken stop)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(stop);
        await using var read = new NpgsqlCommand(
            "SELECT id, (row_data->>'started')::bigint FROM outbox WHERE id > @last ORDER BY id LIMIT 5000", connection);
        var last = new NpgsqlParameter<long>("last", 0L); read.Parameters.Add(last);
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var got = 0;
                await using (var reader = await read.ExecuteReaderAsync(stop))
                {
                    while (await reader.ReadAsync(stop))
                    {
                        last.TypedValue = reader.GetInt64(0);
                        recorder.Record(reader.GetInt64(1));
                        got++;
                    }
                }

                if (got < 5000)
                {
                    await Task.Delay(interval, stop);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Sends at a fixed rate; a writer that falls behind sends at once rather than skipping.</summary>
    private static async Task<long> WriteAtRateAsync(string connectionString, int rate, TimeSpan duration, long idOffset, int payloadBytes)
    {
        var nextId = 0L;
        var writers = rate == IdleRate ? 1 : Writers;
        var perWriterInterval = TimeSpan.FromSeconds(writers / (double)rate);

        async Task WriterAsync(int writer)
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            await using var insert = new NpgsqlCommand("INSERT INTO bench (id, payload, started) VALUES (@id, @payload, @started)", connection);
            var id = new NpgsqlParameter<long>("id", 0L); insert.Parameters.Add(id);
            insert.Parameters.Add(new NpgsqlParameter<string>("payload", payloadBytes == 100 ? new string('x', 100) : Payloads.Incompressible(payloadBytes, writer)));
            var started = new NpgsqlParameter<long>("started", 0L); insert.Parameters.Add(started);
            var clock = Stopwatch.StartNew();
            var due = TimeSpan.FromTicks(perWriterInterval.Ticks * writer / writers);
            while (clock.Elapsed < duration)
            {
                var wait = due - clock.Elapsed;
                if (wait > TimeSpan.FromMilliseconds(1))
                {
                    await Task.Delay(wait);
                }

                id.TypedValue = idOffset + Interlocked.Increment(ref nextId);
                started.TypedValue = Stopwatch.GetTimestamp();
                await insert.ExecuteNonQueryAsync();
                due += perWriterInterval;
            }
        }

        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(() => WriterAsync(w))));
        return Interlocked.Read(ref nextId);
    }

    internal static async Task WaitActiveAsync(IEventConsumer consumer)
    {
        while (!(await consumer.GetStatusAsync()).IsActive)
        {
            await Task.Delay(10);
        }
    }

    private sealed class Stopper(Func<Task> stop) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await stop();
    }
}
