using System.Data;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// One working session of an active consumer on one connection: takes the lease, listens, then reads
/// the log after the cursor and delivers in order until the connection fails or the consumer stops.
/// When nothing is left it waits for the holders of a position hole, rings the doorbell so writers
/// notify, and sleeps until a notification or the poll interval. Companions on connections of their
/// own sample the lag, purge the log and write snapshot chunks while the loop runs. With <c>batched</c> (a batch handler is
/// registered) each read is delivered as one unit; otherwise event by event.
/// </summary>
internal sealed class DeliveryLoop(
    PgEventsOptions options,
    IReadOnlyCollection<TableName> tables,
    bool batched,
    SchemaSettings settings,
    SessionConnections sessions,
    ConsumerLease lease,
    DeliveryProgress progress,
    FailurePolicyRunner failurePolicy,
    ConsumerState state,
    WakeUpSignal wakeUp,
    LagSampler lag,
    RetentionWorker retention,
    SnapshotWorker snapshots,
    PgEventsMetrics metrics,
    TimeProvider time,
    ILogger readerLogger,
    ILogger logger)
{
    private readonly KeyValuePair<string, object?> _consumerTag = new("pgevents.consumer", options.ConsumerName);

    public async Task RunAsync(NpgsqlConnection connection, bool reconnecting, CancellationToken cancellationToken)
    {
        await WorkingSession.ConfigureAsync(connection, cancellationToken).ConfigureAwait(false);

        await lease.AcquireAsync(connection, cancellationToken).ConfigureAwait(false);

        // Listen before the first read: whatever commits after this point also wakes us up.
        await using var listener = await NotificationListener.StartAsync(
            sessions, options.NotificationChannel, options.KeepAliveInterval, wakeUp, cancellationToken).ConfigureAwait(false);
        var cursor = await progress.LoadAsync(connection, cancellationToken).ConfigureAwait(false);

        // Before the first read, which it filters: see SubscriptionFilter.
        await new SubscriptionStore(settings, options.ConsumerName).RecordAsync(connection, tables, cancellationToken).ConfigureAwait(false);
        state.BecomeActive();
        if (reconnecting)
        {
            PgEventsLog.Reconnected(logger, state.Name, cursor);
        }
        else
        {
            PgEventsLog.ConsumerStarted(logger, state.Name, cursor);
        }

        using var stopCompanions = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sampling = lag.RunAsync(stopCompanions.Token);
        var purging = retention.RunAsync(stopCompanions.Token);
        var snapshotting = snapshots.RunAsync(stopCompanions.Token);
        try
        {
            await DeliverUntilStoppedAsync(connection, listener, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await stopCompanions.CancelAsync().ConfigureAwait(false);
            await sampling.ConfigureAwait(false);
            await purging.ConfigureAwait(false);
            await snapshotting.ConfigureAwait(false);
            await SaveOnStopAsync(connection).ConfigureAwait(false);
        }
    }

    private async Task DeliverUntilStoppedAsync(NpgsqlConnection connection, NotificationListener listener, CancellationToken cancellationToken)
    {
        var reader = new ChangeLogReader(settings, options.ConsumerName, readerLogger, time);
        var doorbell = new Doorbell(settings, time);
        var keys = options.DeliveryLanes > 1 ? await RowKeys.LoadAsync(connection, tables, cancellationToken).ConfigureAwait(false) : null;
        var lanes = StartLanes(connection, keys, cancellationToken);

        // With lanes the log is read ahead of the cursor, which follows the lanes' low watermark.
        var readFrom = progress.Delivered;

        // The end of transactions read that hold nothing for this consumer, not yet passed by the
        // cursor because lanes were still working on changes before them.
        long? pass = null;
        var readAfterCommitPhase = false;
        var lastSaved = time.GetTimestamp();
        var cursorSaved = true;
        var limits = new ReadLimits(
            options.BatchSize, options.MaxBatchBytes, WholeTransactions: batched && options.BatchBoundary == BatchBoundary.Transaction);
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                wakeUp.Reset();
                var batch = await reader.ReadAsync(connection, lanes is null ? progress.Delivered : readFrom, limits, cancellationToken).ConfigureAwait(false);
                try
                {
                    var busy = batch.Events.Count > 0 || batch.PassedThrough is not null;
                    if (busy)
                    {
                        // Busy: writers need not notify (and so do not queue on PostgreSQL's NOTIFY lock).
                        await doorbell.ReleaseAsync(connection, cancellationToken).ConfigureAwait(false);
                        readAfterCommitPhase = false;
                        if (batch.Events.Count > 0)
                        {
                            metrics.BatchSize.Record(batch.Events.Count, _consumerTag);
                            await DeliverAsync(connection, batch, lanes, cancellationToken).ConfigureAwait(false);
                            readFrom = batch.Events[^1].LogPosition;
                        }

                        if (batch.PassedThrough is { } passed)
                        {
                            // Nothing of those transactions is this consumer's: the cursor passes them
                            // (so a consumer of quiet tables does not hold retention back).
                            readFrom = new LogPosition(passed, long.MaxValue);
                            pass = passed;
                        }
                    }

                    // Also when the read was empty: the lanes may have finished what held the pass back.
                    pass = PassIfIdle(pass, lanes);

                    // While busy, or waiting a moment for a transaction in its commit phase, the cursor
                    // is saved every BusySaveInterval rather than after every read: under 16 writers a
                    // save per read was 2,000 updates of the consumer's row and as many round trips in
                    // 15 s, for reads of about 20 events. A crash repeats what was delivered since the
                    // last save (at-least-once); a consumer that runs out of work saves before it
                    // sleeps, so an idle consumer's saved cursor is current.
                    var idle = !busy && batch.WaitingOn is null;
                    cursorSaved = idle || time.GetElapsedTime(lastSaved) >= BusySaveInterval;
                    if (cursorSaved)
                    {
                        await progress.SaveAsync(connection, cancellationToken).ConfigureAwait(false);
                        lastSaved = time.GetTimestamp();
                    }

                    if (busy)
                    {
                        continue;
                    }

                    if (lanes is { InFlight: > 0 })
                    {
                        // Everything read is on the lanes: save the cursor as they complete, and read
                        // again soon, since writers do not notify a consumer that is not asleep.
                        await lanes.WaitForProgressAsync(LaneReadInterval, time, cancellationToken).ConfigureAwait(false);
                        if (!progress.HasUnsaved && await progress.Store.WasResetAsync(connection, cancellationToken).ConfigureAwait(false))
                        {
                            // Nothing moved (a lane may be stuck on a failing change) and an operator
                            // moved the cursor: a lane's retry wait may have missed the notification.
                            throw new CursorResetException();
                        }

                        await progress.SaveAsync(connection, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                }
                catch (CursorResetException)
                {
                    // A replay moved the cursor: continue from where it now points.
                    (reader, lanes, readFrom) = await RestartAfterResetAsync(connection, lanes, keys, cancellationToken).ConfigureAwait(false);
                    pass = null;
                    continue;
                }

                // A read found nothing left to deliver: the whole cycle works on this connection.
                // Resets are looked for as often as the cursor is saved (a save would meet one).
                state.ConfirmRunning();
                if (cursorSaved && await progress.Store.WasResetAsync(connection, cancellationToken).ConfigureAwait(false))
                {
                    (reader, lanes, readFrom) = await RestartAfterResetAsync(connection, lanes, keys, cancellationToken).ConfigureAwait(false);
                    pass = null;
                    continue;
                }

                if (batch.WaitingOn is not null)
                {
                    // The holders of a hole end by committing (which fills it) or by aborting (which
                    // notifies nobody): wait on their locks, which release the moment they end.
                    await reader.WaitForPendingHoleAsync(connection, options.PollInterval, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (!readAfterCommitPhase)
                {
                    // From now on writers notify. One that checked before, or whose notification
                    // arrived before its commit was visible, is in its commit phase: wait for
                    // those, then read once more before sleeping.
                    await doorbell.HoldAsync(connection, options.PollInterval, cancellationToken).ConfigureAwait(false);
                    readAfterCommitPhase = true;
                    continue;
                }

                readAfterCommitPhase = false;
                var woken = await listener.WaitAsync(wakeUp, options.PollInterval, time, cancellationToken).ConfigureAwait(false);
                metrics.WakeUps.Add(1, _consumerTag, new("pgevents.wakeup.source", woken ? "notify" : "poll"));
            }
        }
        finally
        {
            if (lanes is not null)
            {
                await lanes.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Moves the cursor to the end of <paramref name="pass"/> once no change before it is still on a
    /// lane (at once without lanes); returns what is left to pass.
    /// </summary>
    private long? PassIfIdle(long? pass, LaneScheduler? lanes)
    {
        if (pass is not { } position || lanes is { InFlight: > 0 })
        {
            return pass;
        }

        if (progress.Delivered.Position < position)
        {
            progress.Advance(new LogPosition(position, long.MaxValue));
        }

        return null;
    }

    private static readonly TimeSpan BusySaveInterval = TimeSpan.FromMilliseconds(100);

    private TimeSpan LaneReadInterval => options.PollInterval < TimeSpan.FromMilliseconds(50) ? options.PollInterval : TimeSpan.FromMilliseconds(50);

    private LaneScheduler? StartLanes(NpgsqlConnection connection, RowKeys? keys, CancellationToken cancellationToken) =>
        keys is null
            ? null
            : new LaneScheduler(options.DeliveryLanes, Math.Max(1, options.BatchSize / options.DeliveryLanes), keys, failurePolicy, progress, connection, cancellationToken);

    /// <summary>Delivers one read: on the lanes, as one batch unit, or event by event.</summary>
    private async Task DeliverAsync(NpgsqlConnection connection, ChangeLogBatch batch, LaneScheduler? lanes, CancellationToken cancellationToken)
    {
        if (lanes is not null)
        {
            foreach (var captured in batch.Events)
            {
                await lanes.EnqueueAsync(captured, cancellationToken).ConfigureAwait(false);
            }
        }
        else if (batched)
        {
            await failurePolicy.DeliverAsync(connection, new DeliveryUnit(batch.Events, batch.EndsTransaction), cancellationToken).ConfigureAwait(false);
        }
        else
        {
            foreach (var captured in batch.Events)
            {
                await failurePolicy.DeliverAsync(connection, DeliveryUnit.Of(captured), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task<(ChangeLogReader Reader, LaneScheduler? Lanes, LogPosition ReadFrom)> RestartAfterResetAsync(
        NpgsqlConnection connection, LaneScheduler? lanes, RowKeys? keys, CancellationToken cancellationToken)
    {
        if (lanes is not null)
        {
            // Whatever the lanes still hold lies after the old cursor: abandon it, and start over.
            await lanes.DisposeAsync().ConfigureAwait(false);
        }

        var reader = await ReloadAfterResetAsync(connection, cancellationToken).ConfigureAwait(false);
        return (reader, StartLanes(connection, keys, cancellationToken), progress.Delivered);
    }

    private async Task<ChangeLogReader> ReloadAfterResetAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        state.Unblock();
        var cursor = await progress.LoadAsync(connection, cancellationToken).ConfigureAwait(false);
        PgEventsLog.CursorReset(logger, state.Name, cursor);

        // A fresh reader: the hole it was waiting on may lie behind the new cursor.
        return new ChangeLogReader(settings, options.ConsumerName, readerLogger, time);
    }

    /// <summary>Shutting down: keeps the progress made, so a restart repeats at most the event in flight.</summary>
    private async Task SaveOnStopAsync(NpgsqlConnection connection)
    {
        if (!progress.HasUnsaved || connection.State != ConnectionState.Open)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await progress.SaveAsync(connection, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException or CursorResetException)
        {
            // At-least-once still holds: the next run repeats what was not persisted.
        }
    }
}
