using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Runs every handler of one event once, in one DI scope, and commits the transaction a handler
/// asked for together with whatever the caller must write with it (the cursor, or the removal of
/// a replayed dead letter). Knows nothing of retries: the failure policy decides what happens next.
/// </summary>
internal sealed class EventDispatcher(
    string consumerName,
    HandlerMap handlers,
    IServiceScopeFactory scopes,
    RowDeserializer deserializer,
    PgEventsMetrics metrics,
    TimeProvider time)
{
    private readonly KeyValuePair<string, object?> _consumerTag = new("pgevents.consumer", consumerName);

    public IReadOnlyList<HandlerRegistration> HandlersOf(CapturedEvent captured) => handlers.For(captured.TableName);

    /// <summary>
    /// Delivers <paramref name="captured"/> with tracing and timing. Returns whether a handler's
    /// transaction was committed (and with it whatever <paramref name="beforeCommit"/> wrote).
    /// </summary>
    public async Task<bool> DispatchAsync(
        NpgsqlConnection connection,
        CapturedEvent captured,
        Func<NpgsqlTransaction?, CancellationToken, Task> beforeCommit,
        CancellationToken cancellationToken)
    {
        var registered = HandlersOf(captured);
        if (registered.Count == 0)
        {
            throw new PgEventsException(
                $"No handler is registered for table {captured.TableName} (event at position {captured.LogPosition}). " +
                $"Register one with AddHandler<TRow, THandler>(\"{captured.Schema}.{captured.Table}\"), untrack the table, " +
                "or set PgEventsOptions.UnmappedTablePolicy to Skip. If a mapped table was renamed, its events carry the new name " +
                "from the rename on: map the new name.");
        }

        using var activity = PgEventsDiagnostics.ActivitySource.StartActivity("pgevents.deliver", ActivityKind.Consumer);
        if (activity is not null)
        {
            activity.SetTag("pgevents.consumer", consumerName);
            activity.SetTag("pgevents.table", captured.TableName.ToString());
            activity.SetTag("pgevents.operation", captured.Kind.ToString());
            activity.SetTag("pgevents.position", captured.Position);
            activity.SetTag("pgevents.event_id", captured.EventId);
        }

        var started = time.GetTimestamp();
        try
        {
            return await RunHandlersAsync(connection, captured, registered, beforeCommit, cancellationToken).ConfigureAwait(false);
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
    /// Runs the handlers in one scope. Then <paramref name="beforeCommit"/> runs, inside the transaction if a
    /// handler asked for one, which is then committed; returns whether it was.
    /// </summary>
    public async Task<bool> RunHandlersAsync(
        NpgsqlConnection connection,
        CapturedEvent captured,
        IReadOnlyList<HandlerRegistration> registered,
        Func<NpgsqlTransaction?, CancellationToken, Task> beforeCommit,
        CancellationToken cancellationToken)
    {
        var scope = scopes.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            var transaction = new EventTransactionScope(connection);
            await using (transaction.ConfigureAwait(false))
            {
                foreach (var handler in registered)
                {
                    await handler.Invoke(scope.ServiceProvider, captured, deserializer, transaction, cancellationToken).ConfigureAwait(false);
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
}
