using Npgsql;

namespace PgEvents.Benchmarks;

/// <summary>
/// Samples what the writers' backends are doing (pg_stat_activity) while a write measurement runs:
/// the evidence for where a design's time goes. "CPU" is an active backend with no wait event
/// (running, or waiting for a core); "client" is a backend idle between statements, i.e. waiting
/// for the driver and the network.
/// </summary>
internal sealed class WaitEventSampler : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Dictionary<string, long> _counts = new(StringComparer.Ordinal);
    private readonly Task _sampling;
    private long _samples;

    private WaitEventSampler(string connectionString) => _sampling = Task.Run(() => SampleAsync(connectionString));

    public static WaitEventSampler Start(string connectionString) => new(connectionString);

    private async Task SampleAsync(string connectionString)
    {
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(_stop.Token);
            await using var command = new NpgsqlCommand(
                """
                SELECT CASE WHEN state = 'idle' THEN 'client'
                            WHEN wait_event IS NULL THEN 'CPU'
                            ELSE wait_event_type || ':' || wait_event END
                  FROM pg_stat_activity
                 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                """, connection);
            await command.PrepareAsync(_stop.Token);
            while (!_stop.IsCancellationRequested)
            {
                await using (var reader = await command.ExecuteReaderAsync(_stop.Token))
                {
                    while (await reader.ReadAsync(_stop.Token))
                    {
                        var state = reader.GetString(0);
                        _counts[state] = _counts.GetValueOrDefault(state) + 1;
                        _samples++;
                    }
                }

                await Task.Delay(20, _stop.Token);
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
    }

    /// <summary>Stops sampling; returns the share of backend samples per state, largest first.</summary>
    public async Task<IReadOnlyList<(string State, double Share)>> StopAsync()
    {
        await _stop.CancelAsync();
        await _sampling;
        return _samples == 0 ? [] : _counts.OrderByDescending(c => c.Value).Select(c => (c.Key, c.Value / (double)_samples)).ToArray();
    }

    public static string Describe(IReadOnlyList<(string State, double Share)> shares, int top = 3) =>
        shares.Count == 0 ? "–" : string.Join(", ", shares.Take(top).Select(s => $"{s.State} {s.Share * 100:0}%"));

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await StopAsync();
        }

        _stop.Dispose();
    }
}
