using Npgsql;

namespace PgEvents;

/// <summary>
/// The consumer's cursor in memory and in its row: how far delivery got, and how much of that is
/// saved. A restart repeats exactly what was delivered but not saved (at-least-once).
/// </summary>
internal sealed class DeliveryProgress(CursorStore store, ConsumerState state)
{
    // Written by the delivery loop (and, with lanes, by the lanes as they complete), read by status
    // queries on other threads; a two-field struct could be read half-updated without the lock.
    private readonly object _lock = new();
    private LogPosition _delivered;
    private LogPosition _saved;
    // Created only while someone waits (the snapshot worker), so delivering an event allocates nothing.
    private TaskCompletionSource? _moved;

    public CursorStore Store { get; } = store;

    /// <summary>The position of the last event whose handlers all succeeded.</summary>
    public LogPosition Delivered
    {
        get
        {
            lock (_lock)
            {
                return _delivered;
            }
        }
    }

    /// <summary>Whether something delivered is not saved yet.</summary>
    public bool HasUnsaved
    {
        get
        {
            lock (_lock)
            {
                return _delivered != _saved;
            }
        }
    }

    /// <summary>Loads the saved cursor (registering the consumer if needed) and resumes from it.</summary>
    public async Task<LogPosition> LoadAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var position = await Store.LoadAsync(connection, cancellationToken).ConfigureAwait(false);
        Set(position, saved: true);
        return position;
    }

    /// <summary>Delivered, not yet saved.</summary>
    public void Advance(LogPosition position) => Set(position, saved: false);

    /// <summary>Delivered and saved in the same transaction.</summary>
    public void AdvanceSaved(LogPosition position) => Set(position, saved: true);

    /// <summary>Saves what was delivered; throws <see cref="CursorResetException"/> when a reset moved the cursor meanwhile.</summary>
    public async Task SaveAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        LogPosition delivered;
        lock (_lock)
        {
            // One look at both: lanes may move the delivered position between two.
            if (_delivered == _saved)
            {
                return;
            }

            delivered = _delivered;
        }

        await SaveAsync(connection, delivered, transaction: null, cancellationToken).ConfigureAwait(false);
        lock (_lock)
        {
            // Only what was saved: lanes may have moved the delivered position on meanwhile.
            _saved = delivered;
        }

        state.ConfirmRunning();
    }

    /// <summary>Saves <paramref name="position"/> inside a transaction; throws <see cref="CursorResetException"/> after a reset.</summary>
    public async Task SaveAsync(NpgsqlConnection connection, LogPosition position, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        if (!await Store.SaveAsync(connection, position, transaction, cancellationToken).ConfigureAwait(false))
        {
            throw new CursorResetException();
        }
    }

    /// <summary>Waits until delivery has reached <paramref name="position"/> (or a reset moved it anywhere).</summary>
    public async Task WaitForDeliveryAsync(long position, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task moved;
            lock (_lock)
            {
                if (_delivered.Position >= position)
                {
                    return;
                }

                moved = (_moved ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
            }

            await moved.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void Set(LogPosition position, bool saved)
    {
        TaskCompletionSource? moved;
        lock (_lock)
        {
            _delivered = position;
            if (saved)
            {
                _saved = position;
            }

            moved = _moved;
            _moved = null;
        }

        moved?.TrySetResult();
    }
}
