using Npgsql;

namespace PgEvents;

/// <summary>
/// Holds a dedicated connection in LISTEN and turns notifications into wake-ups. The log stays the
/// source of truth: a lost notification only delays delivery until the next poll.
/// </summary>
internal sealed class NotificationListener : IAsyncDisposable
{
    private readonly SessionConnection _session;
    private readonly NpgsqlConnection _connection;
    private readonly TimeSpan _keepAlive;
    private readonly CancellationTokenSource _stop = new();

    private NotificationListener(SessionConnection session, TimeSpan keepAlive, Task completion)
    {
        _session = session;
        _connection = session.Connection;
        _keepAlive = keepAlive;
        Completion = completion;
    }

    /// <summary>Completes (faulted) when the listening connection fails.</summary>
    public Task Completion { get; private set; }

    public static async Task<NotificationListener> StartAsync(
        SessionConnections sessions, string channel, TimeSpan keepAlive, WakeUpSignal signal, CancellationToken cancellationToken)
    {
        var session = await sessions.OpenAsync(cancellationToken).ConfigureAwait(false);
        var connection = session.Connection;
        try
        {
            connection.Notification += (_, e) =>
            {
                if (string.Equals(e.Channel, channel, StringComparison.Ordinal))
                {
                    signal.Set();
                }
            };
            await using (var listen = new NpgsqlCommand("LISTEN " + SqlIdentifier.Quote(channel), connection))
            {
                await listen.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            var listener = new NotificationListener(session, keepAlive, Task.CompletedTask);
            listener.Completion = listener.WaitLoopAsync();
            return listener;
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Waits for a wake-up on <paramref name="signal"/> or the timeout; true when woken. Throws when
    /// the listening connection died, so that the consumer reconnects instead of polling deaf.
    /// </summary>
    public async Task<bool> WaitAsync(WakeUpSignal signal, TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        if (Completion.IsCompleted)
        {
            await Completion.ConfigureAwait(false);
            throw new NpgsqlException("The LISTEN connection closed unexpectedly.");
        }

        using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var wait = signal.WaitAsync(timeout, time, stopWaiting.Token);
        var first = await Task.WhenAny(wait, Completion).ConfigureAwait(false);
        if (first == Completion)
        {
            await stopWaiting.CancelAsync().ConfigureAwait(false);
            await Completion.ConfigureAwait(false);
            throw new NpgsqlException("The LISTEN connection closed unexpectedly.");
        }

        return await wait.ConfigureAwait(false);
    }

    private async Task WaitLoopAsync()
    {
        // Yield so StartAsync returns before the first wait blocks this path.
        await Task.Yield();
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (!await _connection.WaitAsync(_keepAlive, _stop.Token).ConfigureAwait(false))
                {
                    await ProbeAsync().ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>
    /// A silent connection may be half-open (peer gone without a FIN, backend frozen): waiting on it
    /// would never see a notification again. A query that does not answer in time proves it dead.
    /// </summary>
    private async Task ProbeAsync()
    {
        await using var probe = new NpgsqlCommand("SELECT 1", _connection)
        {
            CommandTimeout = Math.Max(1, (int)Math.Ceiling(_keepAlive.TotalSeconds)),
        };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(_keepAlive + _keepAlive);
        try
        {
            await probe.ExecuteScalarAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!_stop.IsCancellationRequested)
        {
            // The timeout as cause makes the failure transient (NpgsqlException.IsTransient): the consumer reconnects.
            throw new NpgsqlException(
                "The LISTEN connection did not answer a keepalive probe; it is treated as dead.",
                new TimeoutException($"No answer to a probe within {_keepAlive + _keepAlive}.", e));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Completion.ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException)
        {
            // The connection already failed; the consumer has seen or will see that.
        }

        await _session.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
