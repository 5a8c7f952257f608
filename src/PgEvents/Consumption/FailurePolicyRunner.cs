using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Delivers one event under the consumer's failure policy: retries a failing event with backoff and
/// blocks everything after it, or, with <see cref="FailurePolicy.DeadLetter"/>, moves it aside after
/// <see cref="PgEventsOptions.MaxAttempts"/> and goes on. Also applies the unmapped-table policy.
/// </summary>
internal sealed class FailurePolicyRunner(
    PgEventsOptions options,
    EventDispatcher dispatcher,
    DeliveryProgress progress,
    DeadLetterStore deadLetters,
    ConsumerState state,
    WakeUpSignal wakeUp,
    PgEventsMetrics metrics,
    TimeProvider time,
    ILogger logger)
{
    private readonly KeyValuePair<string, object?> _consumerTag = new("pgevents.consumer", options.ConsumerName);

    /// <summary>
    /// Returns once the event is delivered, skipped or dead-lettered. Throws
    /// <see cref="CursorResetException"/> when a reset abandons it, and a connection error when the
    /// connection broke (the event is then delivered again after reconnecting).
    /// </summary>
    public async Task DeliverAsync(NpgsqlConnection connection, CapturedEvent captured, CancellationToken cancellationToken)
    {
        if (dispatcher.HandlersOf(captured).Count == 0 && options.UnmappedTablePolicy == UnmappedTablePolicy.Skip)
        {
            PgEventsLog.UnmappedTableSkipped(logger, state.Name, captured.TableName, captured.Position, captured.EventId);
            progress.Advance(captured.LogPosition);
            return;
        }

        var backoff = new Backoff(options.RetryInitialDelay, options.RetryBackoffMultiplier, options.RetryMaxDelay);
        var firstFailure = DateTimeOffset.MinValue;
        while (true)
        {
            try
            {
                var committed = await dispatcher.DispatchAsync(connection, captured, async (transaction, token) =>
                {
                    // Handler writes and the cursor commit together: effectively once.
                    if (transaction is not null)
                    {
                        await progress.SaveAsync(connection, captured.LogPosition, transaction, token).ConfigureAwait(false);
                    }
                }, cancellationToken).ConfigureAwait(false);
                if (committed)
                {
                    progress.AdvanceSaved(captured.LogPosition);
                }
                else
                {
                    progress.Advance(captured.LogPosition);
                }

                if (backoff.Attempts > 0)
                {
                    state.Unblock();
                    PgEventsLog.DeliveryRecovered(logger, state.Name, captured.TableName, captured.Position, captured.EventId, backoff.Attempts);
                }

                metrics.EventsDelivered.Add(1, _consumerTag, new("pgevents.table", captured.Table));
                return;
            }
            catch (Exception e) when (e is not CursorResetException)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    // Stopping: the event is abandoned, not failed; the next run delivers it again.
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

                    // Whatever happens to this event, what came before it is done.
                    await progress.SaveAsync(connection, cancellationToken).ConfigureAwait(false);
                }

                var delay = backoff.Next();
                if (options.FailurePolicy == FailurePolicy.DeadLetter && backoff.Attempts >= options.MaxAttempts)
                {
                    await DeadLetterAsync(connection, captured, backoff.Attempts, e, cancellationToken).ConfigureAwait(false);
                    return;
                }

                state.Block(new BlockedEvent(captured.Position, captured.EventId, captured.TableName, backoff.Attempts, FailureClassifier.Describe(e), firstFailure));
                PgEventsLog.DeliveryFailed(logger, e, state.Name, captured.Kind, captured.TableName, captured.Position, captured.EventId, backoff.Attempts, delay);
                metrics.Retries.Add(1, _consumerTag, new("pgevents.table", captured.Table));
                await WaitBeforeRetryAsync(connection, delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task DeadLetterAsync(NpgsqlConnection connection, CapturedEvent captured, int attempts, Exception error, CancellationToken cancellationToken)
    {
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
        {
            await deadLetters.AddAsync(connection, transaction, captured, attempts, FailureClassifier.Describe(error), cancellationToken).ConfigureAwait(false);
            await progress.SaveAsync(connection, captured.LogPosition, transaction, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        progress.AdvanceSaved(captured.LogPosition);
        state.Unblock();
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
                && await progress.Store.WasResetAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                throw new CursorResetException();
            }
        }
    }
}
