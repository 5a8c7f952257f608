using System.Collections.Concurrent;

namespace PgEvents.Tests.Infrastructure;

/// <summary>What a handler saw, recorded in delivery order.</summary>
public sealed record Delivery(string Handler, ChangeKind Kind, string Table, long Position, long EventId, object? Row, object? OldRow);

/// <summary>
/// Collects deliveries from test handlers and lets tests wait for a count: the handlers signal,
/// so no test sleeps in the hope that delivery has happened.
/// </summary>
public sealed class EventSink
{
    private readonly ConcurrentQueue<Delivery> _deliveries = new();
    private readonly List<(int Count, TaskCompletionSource Signal)> _waiters = [];

    public IReadOnlyList<Delivery> Deliveries => _deliveries.ToArray();

    public void Record(Delivery delivery)
    {
        _deliveries.Enqueue(delivery);
        lock (_waiters)
        {
            foreach (var waiter in _waiters.Where(w => _deliveries.Count >= w.Count).ToList())
            {
                waiter.Signal.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    public async Task WaitForCountAsync(int count, TimeSpan? timeout = null)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            if (_deliveries.Count >= count)
            {
                return;
            }

            _waiters.Add((count, signal));
        }

        var limit = timeout ?? TimeSpan.FromSeconds(30);
        if (await Task.WhenAny(signal.Task, Task.Delay(limit)) != signal.Task)
        {
            throw new TimeoutException($"Expected {count} deliveries within {limit}, got {_deliveries.Count}.");
        }
    }
}

/// <summary>Records every change it receives.</summary>
public sealed class RecordingHandler<TRow>(EventSink sink) : IRowHandler<TRow>
{
    public Task HandleAsync(RowChange<TRow> change, CancellationToken cancellationToken)
    {
        sink.Record(new Delivery(GetType().Name, change.Kind, change.Table, change.Position, change.EventId, change.Row, change.OldRow));
        return Task.CompletedTask;
    }
}

/// <summary>A second, distinct handler type for "several handlers per table".</summary>
public sealed class SecondRecordingHandler<TRow>(EventSink sink) : IRowHandler<TRow>
{
    public Task HandleAsync(RowChange<TRow> change, CancellationToken cancellationToken)
    {
        sink.Record(new Delivery("second", change.Kind, change.Table, change.Position, change.EventId, change.Row, change.OldRow));
        return Task.CompletedTask;
    }
}
