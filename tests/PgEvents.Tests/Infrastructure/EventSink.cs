namespace PgEvents.Tests.Infrastructure;

/// <summary>What a handler saw, recorded in delivery order.</summary>
public sealed record Delivery(string Handler, ChangeKind Kind, string Table, long Position, long EventId, object? Row, object? OldRow);

/// <summary>
/// Collects deliveries from test handlers and lets tests wait for a count or a condition: the handlers signal,
/// so no test sleeps in the hope that delivery has happened.
/// </summary>
public sealed class EventSink
{
    private readonly List<Delivery> _deliveries = [];
    private readonly List<(Func<IReadOnlyList<Delivery>, bool> Condition, TaskCompletionSource Signal)> _waiters = [];

    public IReadOnlyList<Delivery> Deliveries
    {
        get
        {
            lock (_deliveries)
            {
                return _deliveries.ToArray();
            }
        }
    }

    public void Record(Delivery delivery)
    {
        // Conditions see the live list, under the lock that every change to it takes.
        lock (_deliveries)
        {
            _deliveries.Add(delivery);
            foreach (var waiter in _waiters.Where(w => w.Condition(_deliveries)).ToList())
            {
                waiter.Signal.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    /// <summary>Records what <paramref name="handler"/> was given.</summary>
    public void Record<TRow>(string handler, RowChange<TRow> change) =>
        Record(new Delivery(handler, change.Kind, change.Table.Name, change.Position, change.EventId, change.Row, change.OldRow));

    public Task WaitForCountAsync(int count, TimeSpan? timeout = null) =>
        WaitUntilAsync(deliveries => deliveries.Count >= count, $"{count} deliveries", timeout);

    /// <summary>Waits, signalled by the handlers, until the deliveries so far satisfy <paramref name="condition"/>.</summary>
    public async Task WaitUntilAsync(Func<IReadOnlyList<Delivery>, bool> condition, string what, TimeSpan? timeout = null)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_deliveries)
        {
            if (condition(_deliveries))
            {
                return;
            }

            _waiters.Add((condition, signal));
        }

        var limit = timeout ?? Eventually.DefaultTimeout;
        try
        {
            await signal.Task.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            int got;
            lock (_deliveries)
            {
                _waiters.RemoveAll(w => w.Signal == signal);
                got = _deliveries.Count;
            }

            throw new TimeoutException($"Expected {what} within {limit}, got {got} deliveries.");
        }
    }
}

/// <summary>Records every change it receives.</summary>
public sealed class RecordingHandler<TRow>(EventSink sink) : IRowHandler<TRow>
{
    public Task HandleAsync(RowChange<TRow> change, CancellationToken cancellationToken)
    {
        sink.Record(GetType().Name, change);
        return Task.CompletedTask;
    }
}

/// <summary>A second, distinct handler type for "several handlers per table".</summary>
public sealed class SecondRecordingHandler<TRow>(EventSink sink) : IRowHandler<TRow>
{
    public Task HandleAsync(RowChange<TRow> change, CancellationToken cancellationToken)
    {
        sink.Record("second", change);
        return Task.CompletedTask;
    }
}
