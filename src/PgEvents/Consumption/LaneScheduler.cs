using System.Threading.Channels;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Delivers on <see cref="PgEventsOptions.DeliveryLanes"/> concurrent lanes: changes of the same row
/// (table and primary key) go to the same lane, in order; changes of different rows run
/// concurrently, across reads of the log. A change without a usable key (a truncate, a key update, a
/// table without a primary key) waits until every change before it has completed and runs alone. The
/// cursor follows the low watermark: it moves past a change only once it and every change before it
/// completed. One instance lives for one working session of the consumer.
/// </summary>
internal sealed class LaneScheduler : IAsyncDisposable
{
    private readonly RowKeys _keys;
    private readonly FailurePolicyRunner _failurePolicy;
    private readonly DeliveryProgress _progress;
    private readonly NpgsqlConnection _connection;
    private readonly Channel<CapturedEvent>[] _lanes;
    private readonly Task[] _workers;
    private readonly CancellationTokenSource _stop;
    private readonly int _maxInFlight;

    // Dispatched changes in log order with whether each completed: the head's completed prefix is
    // what the cursor may pass.
    private readonly LinkedList<(LogPosition Position, bool Done)> _inFlight = new();
    private readonly Dictionary<LogPosition, LinkedListNode<(LogPosition Position, bool Done)>> _nodes = [];
    private TaskCompletionSource _progressed = NewSignal();
    private Exception? _fault;

    public LaneScheduler(
        int lanes, int capacity, RowKeys keys, FailurePolicyRunner failurePolicy, DeliveryProgress progress, NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        _keys = keys;
        _failurePolicy = failurePolicy;
        _progress = progress;
        _connection = connection;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _maxInFlight = lanes * capacity;
        _lanes = new Channel<CapturedEvent>[lanes];
        _workers = new Task[lanes];
        for (var i = 0; i < lanes; i++)
        {
            _lanes[i] = Channel.CreateBounded<CapturedEvent>(new BoundedChannelOptions(capacity) { SingleReader = true, SingleWriter = true });
            var lane = _lanes[i];
            _workers[i] = Task.Run(() => WorkAsync(lane.Reader), CancellationToken.None);
        }
    }

    /// <summary>Changes dispatched and not yet completed.</summary>
    public int InFlight
    {
        get
        {
            lock (_inFlight)
            {
                return _inFlight.Count;
            }
        }
    }

    /// <summary>
    /// Hands <paramref name="captured"/> to its lane, waiting while the lane is full; a keyless change
    /// is delivered here, once everything before it completed. Throws what stopped a lane.
    /// </summary>
    public async Task EnqueueAsync(CapturedEvent captured, CancellationToken cancellationToken)
    {
        ThrowIfFaulted();
        if (_keys.KeyOf(captured) is not { } key)
        {
            await DrainAsync(cancellationToken).ConfigureAwait(false);
            await _failurePolicy.DeliverAsync(_connection, DeliveryUnit.Of(captured), cancellationToken).ConfigureAwait(false);
            _progress.Advance(captured.LogPosition);
            return;
        }

        using var stopOrCancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
        try
        {
            // Bounded read-ahead: what the cursor has not passed (completed or not, behind an
            // unfinished change) stays within the lanes' capacity, however far other lanes got.
            while (true)
            {
                Task signal;
                lock (_inFlight)
                {
                    if (_inFlight.Count < _maxInFlight)
                    {
                        _nodes[captured.LogPosition] = _inFlight.AddLast((captured.LogPosition, false));
                        break;
                    }

                    signal = _progressed.Task;
                }

                await signal.WaitAsync(stopOrCancel.Token).ConfigureAwait(false);
                ThrowIfFaulted();
            }

            await _lanes[Lane(key)].Writer.WriteAsync(captured, stopOrCancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            ThrowIfFaulted();
            throw;
        }
    }

    /// <summary>Waits until a change completes (or the timeout passes); throws what stopped a lane.</summary>
    public async Task WaitForProgressAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        ThrowIfFaulted();
        if (NextProgress() is not { } signal)
        {
            return;
        }

        try
        {
            await signal.WaitAsync(timeout, time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Nothing completed yet: the caller reads the log again meanwhile.
        }

        ThrowIfFaulted();
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var lane in _lanes)
        {
            lane.Writer.TryComplete();
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_workers).ConfigureAwait(false);
        }
        catch (Exception) when (_workers.All(w => w.IsCompleted))
        {
            // Their failures were recorded and reported through EnqueueAsync or WaitForProgressAsync.
        }

        _stop.Dispose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private int Lane(string key) => (int)((uint)StringComparer.Ordinal.GetHashCode(key) % (uint)_lanes.Length);

    private async Task DrainAsync(CancellationToken cancellationToken)
    {
        ThrowIfFaulted();
        while (NextProgress() is { } signal)
        {
            await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
            ThrowIfFaulted();
        }
    }

    /// <summary>Completes at the next completion (or lane failure); null when nothing is in flight.</summary>
    private Task? NextProgress()
    {
        lock (_inFlight)
        {
            return _inFlight.Count == 0 ? null : _progressed.Task;
        }
    }

    private async Task WorkAsync(ChannelReader<CapturedEvent> lane)
    {
        try
        {
            await foreach (var captured in lane.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                await _failurePolicy.DeliverAsync(_connection, DeliveryUnit.Of(captured), _stop.Token).ConfigureAwait(false);
                Complete(captured.LogPosition);
            }
        }
        catch (Exception e)
        {
            if (!_stop.IsCancellationRequested || e is not OperationCanceledException)
            {
                // The first failure (a reset, a broken connection) stops every lane; the loop reports it.
                Interlocked.CompareExchange(ref _fault, e, null);
            }

            await _stop.CancelAsync().ConfigureAwait(false);
            Signal();
        }
    }

    private void Complete(LogPosition position)
    {
        lock (_inFlight)
        {
            var node = _nodes[position];
            _nodes.Remove(position);
            node.Value = (position, true);
            LogPosition? passed = null;
            while (_inFlight.First is { Value.Done: true } head)
            {
                passed = head.Value.Position;
                _inFlight.RemoveFirst();
            }

            // Inside the lock: two lanes completing at once must not move the cursor back.
            if (passed is { } watermark)
            {
                _progress.Advance(watermark);
            }
        }

        Signal();
    }

    private void Signal()
    {
        TaskCompletionSource signal;
        lock (_inFlight)
        {
            signal = _progressed;
            _progressed = NewSignal();
        }

        signal.TrySetResult();
    }

    private void ThrowIfFaulted()
    {
        if (Volatile.Read(ref _fault) is { } fault)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(fault);
        }
    }
}
