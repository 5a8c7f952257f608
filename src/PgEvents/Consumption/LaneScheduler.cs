using Npgsql;

namespace PgEvents;

/// <summary>
/// Delivers a read of the log on <see cref="PgEventsOptions.DeliveryLanes"/> concurrent lanes:
/// changes of the same row (table and primary key) go to the same lane, in order; changes of
/// different rows run concurrently. A change without a usable key (a truncate, a key update, a table
/// without a primary key) waits for everything before it and runs alone. The cursor moves past a
/// stretch only once every lane finished it (a low watermark), so it never passes an unfinished change.
/// </summary>
internal sealed class LaneScheduler(int lanes, RowKeys keys, FailurePolicyRunner failurePolicy, DeliveryProgress progress)
{
    public async Task DeliverAsync(NpgsqlConnection connection, IReadOnlyList<CapturedEvent> events, CancellationToken cancellationToken)
    {
        var queues = new List<CapturedEvent>[lanes];
        for (var i = 0; i < lanes; i++)
        {
            queues[i] = [];
        }

        var pending = 0;
        foreach (var captured in events)
        {
            if (keys.KeyOf(captured) is { } key)
            {
                queues[Lane(key)].Add(captured);
                pending++;
                continue;
            }

            // A barrier: finish the stretch before it, then run it alone.
            if (pending > 0)
            {
                await RunLanesAsync(connection, queues, cancellationToken).ConfigureAwait(false);
                pending = 0;
            }

            await failurePolicy.DeliverAsync(connection, DeliveryUnit.Of(captured), cancellationToken).ConfigureAwait(false);
            progress.Advance(captured.LogPosition);
        }

        if (pending > 0)
        {
            await RunLanesAsync(connection, queues, cancellationToken).ConfigureAwait(false);
        }
    }

    private int Lane(string key) => (int)((uint)StringComparer.Ordinal.GetHashCode(key) % (uint)lanes);

    private async Task RunLanesAsync(NpgsqlConnection connection, List<CapturedEvent>[] queues, CancellationToken cancellationToken)
    {
        var last = queues.Where(q => q.Count > 0).Select(q => q[^1]).MaxBy(e => e.LogPosition)!;
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var running = queues.Where(q => q.Count > 0).Select(q => RunLaneAsync(connection, q, failed)).ToArray();
        try
        {
            await Task.WhenAll(running).ConfigureAwait(false);
        }
        catch (Exception) when (running.FirstOrDefault(t => t.IsFaulted && t.Exception!.InnerException is not OperationCanceledException) is { } first)
        {
            // One lane's failure (a reset, a broken connection) stopped the others: report its cause.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first.Exception!.InnerException!);
        }

        foreach (var queue in queues)
        {
            queue.Clear();
        }

        progress.Advance(last.LogPosition);
    }

    private async Task RunLaneAsync(NpgsqlConnection connection, List<CapturedEvent> queue, CancellationTokenSource failed)
    {
        // Off the caller's synchronous path, so that the lanes really run side by side.
        await Task.Yield();
        try
        {
            foreach (var captured in queue)
            {
                await failurePolicy.DeliverAsync(connection, DeliveryUnit.Of(captured), failed.Token).ConfigureAwait(false);
            }
        }
        catch
        {
            await failed.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }
}
