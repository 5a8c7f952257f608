namespace PgEvents;

/// <summary>
/// An auto-reset signal: any number of notifications collapse into one pending wake-up, and a
/// notification that arrives while the consumer reads is not lost.
/// </summary>
internal sealed class WakeUpSignal
{
    private TaskCompletionSource _pending = NewSource();

    public void Set() => Volatile.Read(ref _pending).TrySetResult();

    /// <summary>Clears a pending wake-up; call before reading so later notifications re-arm it.</summary>
    public void Reset()
    {
        if (Volatile.Read(ref _pending).Task.IsCompleted)
        {
            Interlocked.Exchange(ref _pending, NewSource());
        }
    }

    /// <summary>Waits for a wake-up or the timeout; true when woken by a signal.</summary>
    public async Task<bool> WaitAsync(TimeSpan timeout, TimeProvider timeProvider, CancellationToken cancellationToken)
    {
        var pending = Volatile.Read(ref _pending).Task;
        if (pending.IsCompleted)
        {
            return true;
        }

        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var delay = Task.Delay(timeout, timeProvider, timeoutSource.Token);
        var first = await Task.WhenAny(pending, delay).ConfigureAwait(false);
        await timeoutSource.CancelAsync().ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return first == pending;
    }

    private static TaskCompletionSource NewSource() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
