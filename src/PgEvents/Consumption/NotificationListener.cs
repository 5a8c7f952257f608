using Npgsql;

namespace PgEvents;

/// <summary>
/// Holds a dedicated connection in LISTEN and turns notifications into wake-ups. The log stays the
/// source of truth: a lost notification only delays delivery until the next poll.
/// </summary>
internal sealed class NotificationListener : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly CancellationTokenSource _stop = new();

    private NotificationListener(NpgsqlConnection connection, Task completion)
    {
        _connection = connection;
        Completion = completion;
    }

    /// <summary>Completes (faulted) when the listening connection fails.</summary>
    public Task Completion { get; private set; }

    public static async Task<NotificationListener> StartAsync(
        NpgsqlDataSource dataSource, string channel, WakeUpSignal signal, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
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

            var listener = new NotificationListener(connection, Task.CompletedTask);
            listener.Completion = listener.WaitLoopAsync();
            return listener;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task WaitLoopAsync()
    {
        // Yield so StartAsync returns before the first wait blocks this path.
        await Task.Yield();
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _connection.WaitAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
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

        await _connection.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
