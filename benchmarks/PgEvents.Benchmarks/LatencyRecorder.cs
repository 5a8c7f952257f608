using System.Diagnostics;

namespace PgEvents.Benchmarks;

/// <summary>Commit-to-handler latencies, from the writer's timestamp stored in the row.</summary>
internal sealed class LatencyRecorder
{
    private readonly List<double> _milliseconds = [];
    private long _received;

    public long Received => Interlocked.Read(ref _received);

    public IReadOnlyCollection<double> Samples
    {
        get
        {
            lock (_milliseconds)
            {
                return _milliseconds.ToArray();
            }
        }
    }

    public void Clear()
    {
        lock (_milliseconds)
        {
            _milliseconds.Clear();
            Interlocked.Exchange(ref _received, 0);
        }
    }

    public void Record(long started)
    {
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        lock (_milliseconds)
        {
            _milliseconds.Add(elapsed);
        }

        Interlocked.Increment(ref _received);
    }
}

/// <summary>The no-op-ish PgEvents handler of the latency and throughput runs.</summary>
internal sealed class RecordingBenchHandler(LatencyRecorder recorder) : IRowHandler<BenchRow>
{
    public Task HandleAsync(RowChange<BenchRow> change, CancellationToken cancellationToken)
    {
        if (change.Row is { Started: > 0 } row)
        {
            recorder.Record(row.Started);
        }
        else
        {
            recorder.Record(0);
        }

        return Task.CompletedTask;
    }
}
