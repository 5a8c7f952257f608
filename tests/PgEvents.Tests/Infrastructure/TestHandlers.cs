namespace PgEvents.Tests.Infrastructure;

/// <summary>A row type the shared test handlers can pick one row of by its id.</summary>
public interface ITestRow
{
    long Id { get; }
}

/// <summary>
/// Makes a <see cref="SwitchedHandler{TRow}"/> fail on the row with <see cref="FailingId"/> while
/// <see cref="Failing"/> is set (for at most <see cref="FailFirst"/> attempts), and counts every attempt
/// on that row, failed or not, so a test can wait for retries and tell how often the row was tried.
/// Register one instance as a singleton.
/// </summary>
public sealed class FailureSwitch
{
    private readonly List<(int Count, TaskCompletionSource Signal)> _waiters = [];
    private volatile bool _failing = true;
    private int _attempts;

    public long FailingId { get; set; } = -1;

    public bool Failing
    {
        get => _failing;
        set => _failing = value;
    }

    /// <summary>How many attempts fail before the row goes through; by default every attempt while <see cref="Failing"/>.</summary>
    public int FailFirst { get; set; } = int.MaxValue;

    /// <summary>The failure's message, from the row id and the attempt number (1 for the first).</summary>
    public Func<long, int, string> Message { get; set; } = (id, _) => $"boom on item {id}";

    public int Attempts => Volatile.Read(ref _attempts);

    /// <summary>Counts one attempt and returns its number (1 for the first).</summary>
    public int Attempt()
    {
        lock (_waiters)
        {
            var attempt = Interlocked.Increment(ref _attempts);
            foreach (var waiter in _waiters.Where(w => attempt >= w.Count).ToList())
            {
                waiter.Signal.TrySetResult();
                _waiters.Remove(waiter);
            }

            return attempt;
        }
    }

    /// <summary>Waits, signalled by the handler, until the row was attempted <paramref name="count"/> times in all.</summary>
    public async Task WaitForAttemptsAsync(int count, TimeSpan? timeout = null)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            if (Attempts >= count)
            {
                return;
            }

            _waiters.Add((count, signal));
        }

        var limit = timeout ?? Eventually.DefaultTimeout;
        try
        {
            await signal.Task.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"Expected {count} attempts on item {FailingId} (the failing event should be retried) within {limit}, got {Attempts}.");
        }
    }
}

/// <summary>Records every row, except that it throws on the row a <see cref="FailureSwitch"/> makes fail.</summary>
public sealed class SwitchedHandler<TRow>(EventSink sink, FailureSwitch failures) : IRowHandler<TRow>
    where TRow : class, ITestRow
{
    public Task HandleAsync(RowChange<TRow> change, CancellationToken cancellationToken)
    {
        if (change.Row is { } row && row.Id == failures.FailingId)
        {
            var attempt = failures.Attempt();
            if (failures.Failing && attempt <= failures.FailFirst)
            {
                throw new InvalidOperationException(failures.Message(row.Id, attempt));
            }
        }

        sink.Record("switched", change);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Holds a <see cref="GatedHandler{TRow}"/> inside the handler of the row with <see cref="HoldId"/>:
/// <see cref="Entered"/> is set when it gets there, and it stays until <see cref="Release"/> is set or
/// the consumer is cancelled (a gate never released stands for a process frozen mid-event).
/// Register one instance as a singleton.
/// </summary>
public sealed class HandlerGate
{
    public long HoldId { get; set; } = -1;

    /// <summary>
    /// Whether the held row is recorded before the handler holds (its work done, the cursor not yet
    /// saved) rather than once it is released; a cancelled hold then never records it.
    /// </summary>
    public bool RecordBeforeHolding { get; init; }

    public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Records every row, holding on the row a <see cref="HandlerGate"/> names until the gate is released.</summary>
public sealed class GatedHandler<TRow>(EventSink sink, HandlerGate gate) : IRowHandler<TRow>
    where TRow : class, ITestRow
{
    public async Task HandleAsync(RowChange<TRow> change, CancellationToken cancellationToken)
    {
        if (change.Row?.Id != gate.HoldId)
        {
            sink.Record("gated", change);
            return;
        }

        if (gate.RecordBeforeHolding)
        {
            sink.Record("gated", change);
        }

        gate.Entered.TrySetResult();
        await gate.Release.Task.WaitAsync(cancellationToken);
        if (!gate.RecordBeforeHolding)
        {
            sink.Record("gated", change);
        }
    }
}
