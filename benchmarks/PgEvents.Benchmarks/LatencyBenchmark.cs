using System.Diagnostics;
using System.Text.Json;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>How a change reaches its receiver in each design.</summary>
internal enum ReceiverKind
{
    /// <summary>A PgEvents consumer with a handler that notes the arrival time.</summary>
    PgEvents,

    /// <summary>Baseline (a): a LISTEN connection receiving the row as the notification payload.</summary>
    NotifyRow,

    /// <summary>Baseline (b): the outbox polled by id every second.</summary>
    PollEvery1s,

    /// <summary>Baseline (b): the outbox polled by id every 100 ms.</summary>
    PollEvery100ms,
}

/// <summary>One latency measurement.</summary>
/// <param name="Latency">Commit-to-handler milliseconds of the measured rows.</param>
/// <param name="Writes">What the paced writers achieved.</param>
/// <param name="Missed">Rows committed but never seen by the receiver before it was stopped.</param>
internal sealed record LatencyResult(LatencySummary Latency, PacedResult Writes, long Missed);

/// <summary>
/// Commit-to-handler latency at steady write rates. The clock starts with
/// <see cref="Stopwatch.GetTimestamp"/> taken just before the writer sends its autocommit INSERT
/// (the value is stored in the row's <c>started</c> column, so the commit itself is inside the
/// measurement) and stops when the receiver has the row: in the PgEvents handler, in the LISTEN
/// callback of (a), or when the poller of (b) has read it.
/// </summary>
internal static class LatencyBenchmark
{
    /// <summary>Measured rows get ids from here on; warm-up rows stay below and are ignored.</summary>
    private const long MeasuredIdOffset = 1_000_000_000;

    public static string Payload100 { get; } = new('x', 100);

    public static async Task RunAsync(PostgresServer server, MarkdownReport report, BenchmarkProfile profile)
    {
        report.Heading("## 2. Latency, commit to handler");
        report.Paragraph(
            $"Paced single-row autocommit INSERTs (~100 B payload; token bucket on a 1 ms timer; {profile.LatencyWriters} writer connections, " +
            $"one for the idle row). Idle = {profile.IdleRate} events/s for {profile.IdleDuration.TotalSeconds:0} s, so every event finds the receiver waiting; " +
            $"other rates run {profile.LatencyDuration.TotalSeconds:0} s after {profile.LatencyWarmUp.TotalSeconds:0} s of warm-up traffic that is not counted. " +
            "Each cell in a fresh database, the four receivers back to back. Milliseconds; p99.9 of fewer than 1,000 samples is the maximum. " +
            $"{EnvironmentInfo.LoadNote(server)} at start.");

        var cells = new List<(string Label, int Rate, int Writers, TimeSpan Duration)>
        {
            ($"{profile.IdleRate} (idle)", profile.IdleRate, 1, profile.IdleDuration),
        };
        cells.AddRange(profile.Rates.Select(r => (Fmt.Int(r), r, profile.LatencyWriters, profile.LatencyDuration)));

        var rows = new List<IReadOnlyList<string>>();
        foreach (var (label, rate, writers, duration) in cells)
        {
            foreach (var receiver in Enum.GetValues<ReceiverKind>())
            {
                report.Progress($"latency {label}/s {Label(receiver)}");
                var result = await MeasureInFreshDatabaseAsync(server, receiver, rate, writers, profile.LatencyWarmUp, duration, Payload100);
                rows.Add([
                    label, Label(receiver), Fmt.N0(result.Writes.Achieved), Fmt.N0(result.Latency.Count),
                    Fmt.Ms(result.Latency.P50), Fmt.Ms(result.Latency.P99), Fmt.Ms(result.Latency.P999), Fmt.Ms(result.Latency.Max),
                    Fmt.N0(result.Missed),
                ]);
            }
        }

        report.Table(["target events/s", "receiver", "achieved events/s", "samples", "p50", "p99", "p99.9", "max", "never received"], rows);
        report.Paragraph(
            "An achieved rate below the target means the writers could not commit that fast (each waits for its own durable commit), " +
            "not that the receiver fell behind; the receiver's lag shows in the percentiles. \"never received\" counts committed rows the " +
            "receiver had not seen when it was stopped (baseline (b) skips rows whose id was taken by a transaction that committed after a " +
            "higher id had already been read).");
    }

    public static string Label(ReceiverKind receiver) => receiver switch
    {
        ReceiverKind.PgEvents => "pgevents",
        ReceiverKind.NotifyRow => "(a) notify-row",
        ReceiverKind.PollEvery1s => "(b) poll 1 s",
        ReceiverKind.PollEvery100ms => "(b) poll 100 ms",
        _ => throw new ArgumentOutOfRangeException(nameof(receiver)),
    };

    public static async Task<LatencyResult> MeasureInFreshDatabaseAsync(
        PostgresServer server, ReceiverKind receiver, int rate, int writers, TimeSpan warmUp, TimeSpan duration, string payload)
    {
        var design = receiver switch
        {
            ReceiverKind.PgEvents => Design.PgEvents,
            ReceiverKind.NotifyRow => Design.NotifyRow,
            _ => Design.EventTable,
        };
        var connectionString = await server.CreateDatabaseAsync("latency_" + receiver);
        try
        {
            await Designs.CreateAsync(connectionString, design);
            return await MeasureAsync(connectionString, receiver, rate, writers, warmUp, duration, payload, firstId: 1);
        }
        finally
        {
            await server.DropDatabaseAsync(connectionString);
        }
    }

    /// <summary>
    /// Measures on a database already set up for the receiver's design. For PgEvents the consumer
    /// is named <c>latency</c>, so a caller may position its cursor beforehand.
    /// </summary>
    public static async Task<LatencyResult> MeasureAsync(
        string connectionString, ReceiverKind receiver, int rate, int writers, TimeSpan warmUp, TimeSpan duration, string payload, long firstId)
    {
        var recorder = new LatencyRecorder();
        var measuredFrom = firstId + MeasuredIdOffset;
        recorder.Reset(measuredFrom);
        await using var receiving = await StartReceiverAsync(receiver, connectionString, recorder);

        // Warm-up traffic JIT-compiles every path and fills caches and plans on both sides.
        if (warmUp > TimeSpan.Zero)
        {
            var warm = await PacedWriter.RunAsync(connectionString, rate, writers, warmUp, firstId, payload);
            await WaitForAsync(() => recorder.Seen, warm.Sent, StallTimeout(receiver));
        }

        var writes = await PacedWriter.RunAsync(connectionString, rate, writers, duration, measuredFrom, payload);
        await WaitForAsync(() => recorder.Received, writes.Sent, StallTimeout(receiver));
        var samples = recorder.Snapshot();
        return new LatencyResult(Percentiles.Summarize(samples), writes, Math.Max(0, writes.Sent - samples.Length));
    }

    /// <summary>How long a receiver may make no progress before the rest counts as never received.</summary>
    private static TimeSpan StallTimeout(ReceiverKind receiver) =>
        receiver == ReceiverKind.PollEvery1s ? TimeSpan.FromSeconds(4) : TimeSpan.FromSeconds(3);

    private static async Task WaitForAsync(Func<long> progress, long expected, TimeSpan stallTimeout)
    {
        var last = progress();
        var stalled = Stopwatch.StartNew();
        while (last < expected && stalled.Elapsed < stallTimeout)
        {
            await Task.Delay(10);
            var now = progress();
            if (now != last)
            {
                last = now;
                stalled.Restart();
            }
        }
    }

    private static async Task<IAsyncDisposable> StartReceiverAsync(ReceiverKind receiver, string connectionString, LatencyRecorder recorder)
    {
        switch (receiver)
        {
            case ReceiverKind.PgEvents:
                var host = ConsumerHost.Create<LatencyHandler, LatencyRecorder>(connectionString, "latency", tables: 1, recorder);
                await host.Consumer.InstallAsync();
                host.Start();
                await host.WaitActiveAsync(TimeSpan.FromSeconds(30));
                return host;

            case ReceiverKind.NotifyRow:
                return await NotifyRowReceiver.StartAsync(connectionString, recorder);

            default:
                return OutboxPoller.Start(connectionString, recorder,
                    receiver == ReceiverKind.PollEvery1s ? TimeSpan.FromSeconds(1) : TimeSpan.FromMilliseconds(100));
        }
    }

    /// <summary>Baseline (a): the row arrives inside the notification.</summary>
    private sealed class NotifyRowReceiver : IAsyncDisposable
    {
        private readonly NpgsqlConnection _connection;
        private readonly CancellationTokenSource _stop = new();
        private Task _waiting = Task.CompletedTask;

        private NotifyRowReceiver(NpgsqlConnection connection) => _connection = connection;

        public static async Task<NotifyRowReceiver> StartAsync(string connectionString, LatencyRecorder recorder)
        {
            var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            connection.Notification += (_, e) =>
            {
                using var row = JsonDocument.Parse(e.Payload);
                recorder.Record(row.RootElement.GetProperty("id").GetInt64(), row.RootElement.GetProperty("started").GetInt64());
            };
            await Designs.ExecuteAsync(connection, "LISTEN " + Designs.Quote(Designs.NotifyChannel));
            var receiver = new NotifyRowReceiver(connection);
            receiver._waiting = Task.Run(receiver.WaitLoopAsync);
            return receiver;
        }

        private async Task WaitLoopAsync()
        {
            try
            {
                while (true)
                {
                    await _connection.WaitAsync(_stop.Token);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _waiting;
            await _connection.DisposeAsync();
            _stop.Dispose();
        }
    }

    /// <summary>Baseline (b): the classic outbox reader, by id, sleeping between polls that found less than a page.</summary>
    private sealed class OutboxPoller : IAsyncDisposable
    {
        private const int PageSize = 1000;
        private readonly CancellationTokenSource _stop = new();
        private Task _polling = Task.CompletedTask;

        public static OutboxPoller Start(string connectionString, LatencyRecorder recorder, TimeSpan interval)
        {
            var poller = new OutboxPoller();
            poller._polling = Task.Run(() => poller.PollAsync(connectionString, recorder, interval));
            return poller;
        }

        private async Task PollAsync(string connectionString, LatencyRecorder recorder, TimeSpan interval)
        {
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(_stop.Token);
                await using var read = new NpgsqlCommand(
                    "SELECT id, (row_data->>'id')::bigint, (row_data->>'started')::bigint FROM \"outbox\" WHERE id > $1 ORDER BY id LIMIT $2",
                    connection);
                var last = new NpgsqlParameter<long> { TypedValue = 0 };
                read.Parameters.Add(last);
                read.Parameters.Add(new NpgsqlParameter<int> { TypedValue = PageSize });
                await read.PrepareAsync(_stop.Token);
                while (!_stop.IsCancellationRequested)
                {
                    var got = 0;
                    await using (var reader = await read.ExecuteReaderAsync(_stop.Token))
                    {
                        while (await reader.ReadAsync(_stop.Token))
                        {
                            last.TypedValue = reader.GetInt64(0);
                            recorder.Record(reader.GetInt64(1), reader.GetInt64(2));
                            got++;
                        }
                    }

                    if (got < PageSize)
                    {
                        await Task.Delay(interval, _stop.Token);
                    }
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _polling;
            _stop.Dispose();
        }
    }
}
