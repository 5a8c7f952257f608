using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Delivers one unit (an event, or a batch) under the consumer's failure policy: retries a failing
/// unit with backoff and blocks everything after it, or, with <see cref="FailurePolicy.DeadLetter"/>,
/// after <see cref="PgEventsRetryOptions.MaxAttempts"/> moves a failing event aside (a failing batch is
/// first split into its events, so only the poison is moved) and goes on. Also applies the
/// unmapped-table policy.
/// </summary>
internal sealed class FailurePolicyRunner(
    PgEventsOptions options,
    EventDispatcher dispatcher,
    DeliveryProgress progress,
    DeadLetterStore deadLetters,
    NpgsqlDataSource sideConnections,
    ConsumerState state,
    WakeUpSignal wakeUp,
    PgEventsMetrics metrics,
    TimeProvider time,
    ILogger logger)
{
    private readonly KeyValuePair<string, object?> _consumerTag = new("pgevents.consumer", options.ConsumerName);

    // With lanes, deliveries run beside the delivery loop, which keeps reading on the consumer's
    // connection: their own writes (dead letters) and reads (resets) use pooled connections, and only
    // the lane scheduler knows how far the cursor may move.
    private readonly bool _lanes = options.DeliveryLanes > 1;

    /// <summary>
    /// Returns once the unit is delivered, skipped or dead-lettered. Throws
    /// <see cref="CursorResetException"/> when a reset abandons it, and a connection error when the
    /// connection broke (the unit is then delivered again after reconnecting).
    /// </summary>
    public async Task DeliverAsync(NpgsqlConnection connection, DeliveryUnit unit, CancellationToken cancellationToken)
    {
        var unmapped = 0;
        foreach (var captured in unit.Events)
        {
            if (!dispatcher.HasHandlers(captured) && options.UnmappedTablePolicy == UnmappedTablePolicy.Skip)
            {
                PgEventsLog.UnmappedTableSkipped(logger, state.Name, captured.TableName, captured.Position, captured.EventId);
                unmapped++;
            }
        }

        if (unmapped == unit.Count)
        {
            Advance(unit.Last.LogPosition, saved: false);
            return;
        }

        var backoff = new Backoff(options.Retry.InitialDelay, options.Retry.BackoffMultiplier, options.Retry.MaxDelay);
        var firstFailure = DateTimeOffset.MinValue;
        while (true)
        {
            try
            {
                var committed = await dispatcher.DispatchAsync(connection, unit, async (transaction, token) =>
                {
                    // Handler writes and the cursor commit together: effectively once.
                    if (transaction is not null)
                    {
                        await progress.SaveAsync(connection, unit.Last.LogPosition, transaction, token).ConfigureAwait(false);
                    }
                }, cancellationToken).ConfigureAwait(false);
                Advance(unit.Last.LogPosition, saved: committed);

                // Also when the failures were on an earlier connection: after a reconnect the event
                // starts over at its first attempt, and what blocked it is over either way. With
                // lanes, another lane's event may still be blocked: clear only this one's mark.
                if (_lanes)
                {
                    state.UnblockIf(unit.First.Position, unit.First.EventId);
                }
                else
                {
                    state.Unblock();
                }
                if (backoff.Attempts > 0)
                {
                    PgEventsLog.DeliveryRecovered(logger, state.Name, unit.First.TableName, unit.First.Position, unit.First.EventId, backoff.Attempts);
                }

                foreach (var captured in unit.Events)
                {
                    metrics.EventsDelivered.Add(1, _consumerTag, new("pgevents.table", captured.Table));
                }

                return;
            }
            catch (Exception e) when (e is not CursorResetException)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    // Stopping: the unit is abandoned, not failed; the next run delivers it again.
                    throw new OperationCanceledException("The consumer stopped while delivering an event.", e, cancellationToken);
                }

                if (FailureClassifier.IsBroken(connection))
                {
                    // Not the event's fault: reconnect and deliver it again.
                    throw new NpgsqlException("The consumer's connection broke while delivering an event.", e);
                }

                if (backoff.Attempts == 0)
                {
                    firstFailure = time.GetUtcNow();

                    // Whatever happens to this unit, what came before it is done (with lanes, what
                    // came before may still be running: the scheduler saves the cursor).
                    if (!_lanes)
                    {
                        await progress.SaveAsync(connection, cancellationToken).ConfigureAwait(false);
                    }
                }

                var delay = backoff.Next();
                if (options.FailurePolicy == FailurePolicy.DeadLetter && backoff.Attempts >= options.Retry.MaxAttempts)
                {
                    if (unit.Count > 1)
                    {
                        // Find the poison: deliver the batch's events one by one, each under the full
                        // policy, so that only the events that fail alone are dead-lettered.
                        PgEventsLog.BatchIsolating(logger, e, state.Name, unit.ToString(), backoff.Attempts);
                        for (var i = 0; i < unit.Count; i++)
                        {
                            // An event ends its transaction when the next one has another position.
                            var captured = unit.Events[i];
                            var endsTransaction = i == unit.Count - 1 ? unit.EndsTransaction : unit.Events[i + 1].Position != captured.Position;
                            await DeliverAsync(connection, DeliveryUnit.Of(captured, endsTransaction), cancellationToken).ConfigureAwait(false);
                        }

                        state.Unblock();
                        return;
                    }

                    await DeadLetterAsync(connection, unit.First, backoff.Attempts, e, cancellationToken).ConfigureAwait(false);
                    return;
                }

                var failing = unit.First;
                state.Block(new BlockedEvent(failing.Position, failing.EventId, failing.TableName, backoff.Attempts, FailureClassifier.Describe(e), firstFailure));
                if (unit.Count == 1)
                {
                    PgEventsLog.DeliveryFailed(logger, e, state.Name, failing.Kind, failing.TableName, failing.Position, failing.EventId, backoff.Attempts, delay);
                }
                else
                {
                    PgEventsLog.BatchDeliveryFailed(logger, e, state.Name, unit.ToString(), backoff.Attempts, delay);
                }

                metrics.Retries.Add(1, _consumerTag, new("pgevents.table", failing.Table));
                await WaitBeforeRetryAsync(connection, delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task DeadLetterAsync(NpgsqlConnection connection, CapturedEvent captured, int attempts, Exception error, CancellationToken cancellationToken)
    {
        if (_lanes)
        {
            // The cursor may not pass changes still running on other lanes: the dead letter is saved
            // alone (redelivery after a crash only updates it again).
            var side = await sideConnections.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await using (side.ConfigureAwait(false))
            {
                await using var alone = await side.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await deadLetters.AddAsync(side, alone, captured, attempts, FailureClassifier.Describe(error), cancellationToken).ConfigureAwait(false);
                await alone.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        else
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await deadLetters.AddAsync(connection, transaction, captured, attempts, FailureClassifier.Describe(error), cancellationToken).ConfigureAwait(false);
            await progress.SaveAsync(connection, captured.LogPosition, transaction, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        Advance(captured.LogPosition, saved: true);
        state.UnblockIf(captured.Position, captured.EventId);
        PgEventsLog.DeadLettered(logger, error, state.Name, captured.TableName, captured.Position, captured.EventId, attempts);
        metrics.DeadLetters.Add(1, _consumerTag, new("pgevents.table", captured.Table));
    }

    /// <summary>
    /// Waits before retrying a failing event. A reset of the cursor (replay, or skipping past the
    /// poisoned event) arrives as a notification: it ends the wait and abandons the event at once.
    /// </summary>
    private async Task WaitBeforeRetryAsync(NpgsqlConnection connection, TimeSpan delay, CancellationToken cancellationToken)
    {
        var until = time.GetTimestamp() + (long)(delay.TotalSeconds * time.TimestampFrequency);
        while (true)
        {
            var remaining = TimeSpan.FromSeconds((until - time.GetTimestamp()) / (double)time.TimestampFrequency);
            if (remaining <= TimeSpan.Zero)
            {
                return;
            }

            wakeUp.Reset();
            if (await wakeUp.WaitAsync(remaining, time, cancellationToken).ConfigureAwait(false)
                && await WasResetAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                throw new CursorResetException();
            }
        }
    }

    private async Task<bool> WasResetAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (!_lanes)
        {
            return await progress.Store.WasResetAsync(connection, cancellationToken).ConfigureAwait(false);
        }

        var side = await sideConnections.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (side.ConfigureAwait(false))
        {
            return await progress.Store.WasResetAsync(side, cancellationToken).ConfigureAwait(false);
        }
    }

    private void Advance(LogPosition position, bool saved)
    {
        if (_lanes)
        {
            return;
        }

        if (saved)
        {
            progress.AdvanceSaved(position);
        }
        else
        {
            progress.Advance(position);
        }
    }
}
