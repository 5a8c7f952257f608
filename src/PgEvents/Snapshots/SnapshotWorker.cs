using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Writes the chunks of this consumer's pending snapshots into the log while the consumer is
/// active, on a connection of its own, a few chunks ahead of delivery: the log never holds more
/// than <see cref="ChunksAhead"/> undelivered chunks, so a snapshot goes at the pace of its handlers
/// and interleaves with live changes instead of flooding the log. While no snapshot is pending it
/// looks for one on a short pooled connection and holds no session: on a data source the host
/// supplies, an idle consumer must not keep a connection its handlers may need.
/// </summary>
internal sealed class SnapshotWorker(
    NpgsqlDataSource pooled,
    SessionConnections sessions,
    SnapshotStore store,
    DeliveryProgress progress,
    WakeUpSignal deliveryWakeUp,
    PgEventsOptions options,
    PgEventsMetrics metrics,
    TimeProvider time,
    ILogger logger)
{
    // Two: the consumer delivers one chunk while the next is written.
    private const int ChunksAhead = 2;

    // How long a chunk waits for writers in their commit phase before it gives up and tries later.
    private static readonly TimeSpan CommitPhaseWait = TimeSpan.FromSeconds(10);

    private const string UndefinedTable = "42P01";
    private const string ObjectNotInPrerequisiteState = "55000";
    private const string InsufficientPrivilege = "42501";

    private readonly WakeUpSignal _requested = new();

    /// <summary>A snapshot was requested in this process: look at once rather than at the next poll.</summary>
    public void NotifyRequested() => _requested.Set();

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = new Backoff(options.Retry.InitialDelay, options.Retry.BackoffMultiplier, options.Retry.MaxDelay, jitter: 0.2);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await WriteWhilePendingAsync(backoff, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                // Delivery goes on; what was written is in the log and the rest resumes from the last chunk.
                var delay = backoff.Next();
                PgEventsLog.SnapshotChunkFailed(logger, e, options.ConsumerName, delay);
                try
                {
                    await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private async Task WaitUntilPendingAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            _requested.Reset();
            var connection = await pooled.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                if (await store.NextPendingAsync(connection, cancellationToken).ConfigureAwait(false) is not null)
                {
                    return;
                }
            }

            await _requested.WaitAsync(options.PollInterval, time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes chunks on a session of its own until no snapshot is pending.</summary>
    private async Task WriteWhilePendingAsync(Backoff backoff, CancellationToken cancellationToken)
    {
        await WaitUntilPendingAsync(cancellationToken).ConfigureAwait(false);
        await using var session = await sessions.OpenAsync(cancellationToken).ConfigureAwait(false);
        var connection = session.Connection;

        await WorkingSession.ConfigureAsync(connection, cancellationToken).ConfigureAwait(false);

        var undelivered = new Queue<long>();
        while (true)
        {
            _requested.Reset();
            var pending = await store.NextPendingAsync(connection, cancellationToken).ConfigureAwait(false);
            if (pending is null)
            {
                return;
            }

            if (undelivered.Count == 0 && pending.LastChunkPosition is { } written)
            {
                // Written before this connection: count it, so a restart does not run further ahead.
                undelivered.Enqueue(written);
            }

            await WaitForDeliveryAsync(undelivered, cancellationToken).ConfigureAwait(false);
            if (pending.Chunks == 0)
            {
                PgEventsLog.SnapshotStarted(logger, options.ConsumerName, pending.Table, pending.RowsEstimated);
            }

            SnapshotChunk chunk;
            try
            {
                chunk = await store.WriteChunkAsync(connection, pending.Relation, options.SnapshotChunkSize, CommitPhaseWait, cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException e) when (e.SqlState is UndefinedTable or ObjectNotInPrerequisiteState or InsufficientPrivilege)
            {
                // The table was dropped or lost its key, or the consumer cannot read all of its rows:
                // no retry can finish this snapshot (a new request can, once that is fixed).
                await store.FailAsync(connection, pending.Relation, e.MessageText, cancellationToken).ConfigureAwait(false);
                PgEventsLog.SnapshotAbandoned(logger, options.ConsumerName, pending.Table, e.MessageText);
                continue;
            }

            backoff.Reset();
            PgEventsLog.SnapshotChunkWritten(logger, options.ConsumerName, pending.Table, chunk.Position, chunk.RowsRead, chunk.RowsWritten);
            if (chunk.RowsRead > 0)
            {
                metrics.SnapshotRows.Add(
                    chunk.RowsRead,
                    new KeyValuePair<string, object?>("pgevents.consumer", options.ConsumerName),
                    new KeyValuePair<string, object?>("pgevents.table", pending.Table.ToString()));
            }

            if (chunk.RowsWritten > 0 && chunk.Position is { } position)
            {
                undelivered.Enqueue(position);
                deliveryWakeUp.Set();
            }

            if (chunk.Completed)
            {
                PgEventsLog.SnapshotCompleted(logger, options.ConsumerName, pending.Table, pending.Chunks + 1);
            }
        }
    }

    /// <summary>Waits until fewer than <see cref="ChunksAhead"/> written chunks are undelivered.</summary>
    private async Task WaitForDeliveryAsync(Queue<long> undelivered, CancellationToken cancellationToken)
    {
        while (true)
        {
            var delivered = progress.Delivered.Position;
            while (undelivered.Count > 0 && undelivered.Peek() <= delivered)
            {
                undelivered.Dequeue();
            }

            if (undelivered.Count < ChunksAhead)
            {
                return;
            }

            await progress.WaitForDeliveryAsync(undelivered.Peek(), cancellationToken).ConfigureAwait(false);
        }
    }
}
