using System.Diagnostics;

namespace PgEvents.Benchmarks;

/// <summary>
/// Commit-to-handler latencies. The writer's <see cref="Stopwatch.GetTimestamp"/> travels in the
/// row, so receivers need no shared state with the writers; rows written during warm-up carry ids
/// below <see cref="MeasureFromId"/> and are not recorded.
/// </summary>
internal sealed class LatencyRecorder
{
    private readonly Lock _lock = new();
    private readonly List<double> _milliseconds = new(capacity: 100_000);
    private long _received;
    private long _seen;

    public long MeasureFromId { get; set; } = long.MaxValue;

    /// <summary>Measured rows seen so far (duplicates included: delivery is at-least-once).</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Every row seen, warm-up included: tells when the warm-up traffic has drained.</summary>
    public long Seen => Interlocked.Read(ref _seen);

    public void Reset(long measureFromId)
    {
        lock (_lock)
        {
            _milliseconds.Clear();
            Interlocked.Exchange(ref _received, 0);
            Interlocked.Exchange(ref _seen, 0);
            MeasureFromId = measureFromId;
        }
    }

    public void Record(long id, long started)
    {
        var now = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _seen);
        if (id < MeasureFromId || started <= 0)
        {
            return;
        }

        var elapsed = Stopwatch.GetElapsedTime(started, now).TotalMilliseconds;
        lock (_lock)
        {
            _milliseconds.Add(elapsed);
        }

        Interlocked.Increment(ref _received);
    }

    public double[] Snapshot()
    {
        lock (_lock)
        {
            return [.. _milliseconds];
        }
    }
}

/// <summary>The latency scenarios' handler: only notes when the row arrived.</summary>
internal sealed class LatencyHandler(LatencyRecorder recorder) : IRowHandler<BenchRow>
{
    public Task HandleAsync(RowChange<BenchRow> change, CancellationToken cancellationToken)
    {
        if (change.Row is { } row)
        {
            recorder.Record(row.Id, row.Started);
        }

        return Task.CompletedTask;
    }
}

/// <summary>Counts deliveries and stamps the first one and the moment the expected number is reached.</summary>
internal sealed class DeliveryCounter
{
    private long _count;
    private long _target = long.MaxValue;
    private long _firstAt;
    private long _reachedAt;

    public long Count => Interlocked.Read(ref _count);

    /// <summary>The <see cref="Stopwatch"/> timestamp of the first delivery, 0 before.</summary>
    public long FirstAt => Interlocked.Read(ref _firstAt);

    /// <summary>The <see cref="Stopwatch"/> timestamp at which <see cref="Count"/> reached the target, 0 before.</summary>
    public long ReachedAt => Interlocked.Read(ref _reachedAt);

    public void Reset(long target)
    {
        Interlocked.Exchange(ref _firstAt, 0);
        Interlocked.Exchange(ref _reachedAt, 0);
        Interlocked.Exchange(ref _count, 0);
        Interlocked.Exchange(ref _target, target);
    }

    public void Increment()
    {
        var count = Interlocked.Increment(ref _count);
        if (count == 1)
        {
            Interlocked.Exchange(ref _firstAt, Stopwatch.GetTimestamp());
        }

        if (count == Interlocked.Read(ref _target))
        {
            Interlocked.Exchange(ref _reachedAt, Stopwatch.GetTimestamp());
        }
    }
}

/// <summary>
/// The throughput scenarios' no-op handler. The library has already deserialized the row into
/// <see cref="BenchRow"/> before calling it, so that cost is inside the measurement.
/// </summary>
internal sealed class CountingHandler(DeliveryCounter counter) : IRowHandler<BenchRow>
{
    public Task HandleAsync(RowChange<BenchRow> change, CancellationToken cancellationToken)
    {
        counter.Increment();
        return Task.CompletedTask;
    }
}
