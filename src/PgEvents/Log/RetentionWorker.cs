using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Runs retention passes every <see cref="PgEventsRetentionOptions.Interval"/> while its consumer is
/// active, on connections of its own. Passing only when a read came back empty let a steady stream
/// starve it, and running on the delivery connection made delivery wait for every delete.
/// </summary>
internal sealed class RetentionWorker(
    NpgsqlDataSource dataSource, LogRetention retention, PgEventsOptions options, TimeProvider time, ILogger logger)
{
    // One pass deletes at most this many batches, then yields the connection; passes continue back
    // to back while they find work, so a large backlog is still worked off.
    private const int BatchesPerPass = 20;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (options.Retention.Age is not { } age)
        {
            return;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                long deleted;
                do
                {
                    await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
                    deleted = await retention.PurgeAsync(connection, age, options.Retention.BatchSize, BatchesPerPass, cancellationToken).ConfigureAwait(false);
                    if (deleted > 0)
                    {
                        PgEventsLog.Purged(logger, options.ConsumerName, deleted, age);
                    }
                }
                while (deleted >= (long)options.Retention.BatchSize * BatchesPerPass && !cancellationToken.IsCancellationRequested);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Delivery goes on; the log only grows until the next pass succeeds.
                PgEventsLog.RetentionFailed(logger, e, options.ConsumerName, options.Retention.Interval);
            }

            try
            {
                await Task.Delay(options.Retention.Interval, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
