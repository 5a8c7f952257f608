using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Runs the handlers of one delivery unit once, in one DI scope: every row handler per event in
/// order, then every batch handler once with its tables' changes. Commits the transaction a handler
/// asked for together with whatever the caller must write with it (the cursor, or the removal of a
/// replayed dead letter). Knows nothing of retries: the failure policy decides what happens next.
/// </summary>
internal sealed class EventDispatcher(
    PgEventsOptions options,
    HandlerMap handlers,
    IServiceScopeFactory scopes,
    RowDeserializer deserializer,
    PgEventsMetrics metrics,
    TimeProvider time)
{
    private readonly KeyValuePair<string, object?> _consumerTag = new("pgevents.consumer", options.ConsumerName);

    public bool HasHandlers(CapturedEvent captured) => handlers.For(captured.TableName).Count > 0;

    /// <summary>
    /// Delivers <paramref name="unit"/> with tracing and timing. Returns whether a handler's
    /// transaction was committed (and with it whatever <paramref name="beforeCommit"/> wrote).
    /// </summary>
    public async Task<bool> DispatchAsync(
        NpgsqlConnection connection,
        DeliveryUnit unit,
        Func<NpgsqlTransaction?, CancellationToken, Task> beforeCommit,
        CancellationToken cancellationToken)
    {
        using var activity = PgEventsDiagnostics.ActivitySource.StartActivity("pgevents.deliver", ActivityKind.Consumer);
        if (activity is not null)
        {
            activity.SetTag("pgevents.consumer", options.ConsumerName);
            activity.SetTag("pgevents.table", unit.First.TableName.ToString());
            activity.SetTag("pgevents.operation", unit.First.Kind.ToString());
            activity.SetTag("pgevents.position", unit.First.Position);
            activity.SetTag("pgevents.event_id", unit.First.EventId);
            if (unit.Count > 1)
            {
                activity.SetTag("pgevents.batch.size", unit.Count);
                activity.SetTag("pgevents.batch.last_position", unit.Last.Position);
                activity.SetTag("pgevents.batch.last_event_id", unit.Last.EventId);
            }
        }

        var started = time.GetTimestamp();
        try
        {
            return await RunHandlersAsync(connection, unit, beforeCommit, cancellationToken, transactionAvailable: options.DeliveryLanes <= 1).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
        finally
        {
            metrics.HandlerDuration.Record(time.GetElapsedTime(started).TotalSeconds, _consumerTag);
        }
    }

    /// <summary>
    /// Runs the handlers in one scope. Then <paramref name="beforeCommit"/> runs, inside the transaction
    /// if a handler asked for one, which is then committed; returns whether it was.
    /// </summary>
    public async Task<bool> RunHandlersAsync(
        NpgsqlConnection connection,
        DeliveryUnit unit,
        Func<NpgsqlTransaction?, CancellationToken, Task> beforeCommit,
        CancellationToken cancellationToken,
        bool transactionAvailable = true)
    {
        var scope = scopes.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            var transaction = new EventTransactionScope(connection, transactionAvailable);
            await using (transaction.ConfigureAwait(false))
            {
                var batches = new List<(HandlerRegistration Handler, List<RowChange> Changes)>();
                foreach (var captured in unit.Events)
                {
                    var registered = handlers.For(captured.TableName);
                    if (registered.Count == 0)
                    {
                        RefuseUnmapped(captured);
                        continue;
                    }

                    foreach (var handler in registered)
                    {
                        if (handler.InvokeRow is { } invoke)
                        {
                            await invoke(scope.ServiceProvider, captured, deserializer, transaction, cancellationToken).ConfigureAwait(false);
                        }
                        else
                        {
                            var index = batches.FindIndex(b => b.Handler.HandlerType == handler.HandlerType);
                            if (index < 0)
                            {
                                batches.Add((handler, []));
                                index = batches.Count - 1;
                            }

                            batches[index].Changes.Add(new RowChange(captured, deserializer));
                        }
                    }
                }

                foreach (var (handler, changes) in batches)
                {
                    await handler.InvokeBatch!(scope.ServiceProvider, new ChangeBatch(changes, unit.EndsTransaction, transaction), cancellationToken).ConfigureAwait(false);
                }

                await beforeCommit(transaction.Transaction, cancellationToken).ConfigureAwait(false);
                if (transaction.Transaction is null)
                {
                    return false;
                }

                await transaction.Transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return true;
            }
        }
    }

    /// <summary>An event of a table without handlers fails its unit, unless the policy skips it.</summary>
    private void RefuseUnmapped(CapturedEvent captured)
    {
        if (options.UnmappedTablePolicy == UnmappedTablePolicy.Skip)
        {
            return;
        }

        throw new PgEventsException(
            $"No handler is registered for table {captured.TableName} (event at position {captured.LogPosition}). " +
            $"This consumer mapped it when the event was committed, or it is a mapped table renamed since. Register a handler with " +
            $"AddHandler<TRow, THandler>(\"{captured.Schema}.{captured.Table}\"), or set PgEventsOptions.UnmappedTablePolicy to Skip " +
            "to pass over its remaining events. If a mapped table was renamed, its events carry the new name from the rename on: map the new name.");
    }
}
