using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>
/// Applies order changes to the replica. Every statement is idempotent, because a change can be
/// delivered twice after a crash: upserts instead of inserts, deletes that accept a missing row.
/// </summary>
/// <param name="replica">The replica database.</param>
/// <param name="statistics">Counts applied events.</param>
public sealed class OrderHandler(ReplicaDatabase replica, SyncStatistics statistics) : IRowHandler<Order>
{
    /// <inheritdoc />
    public async Task HandleAsync(RowChange<Order> change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        await using var command = change.Kind switch
        {
            ChangeKind.Insert or ChangeKind.Update => Upsert(change.Row!),
            ChangeKind.Delete => Delete(change.Row!.Id),
            ChangeKind.Truncate => replica.DataSource.CreateCommand("TRUNCATE orders"),
            _ => throw new NotSupportedException($"Unexpected change kind {change.Kind}."),
        };
        await command.ExecuteNonQueryAsync(cancellationToken);
        statistics.RecordApplied();
    }

    private NpgsqlCommand Upsert(Order row)
    {
        // The customer is already in the replica: its insert committed before this order's did.
        var command = replica.DataSource.CreateCommand(
            """
            INSERT INTO orders (id, customer_id, amount, status, updated_at) VALUES (@id, @customer_id, @amount, @status, @updated_at)
            ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id, amount = EXCLUDED.amount,
                                           status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
            """);
        command.Parameters.AddWithValue("id", row.Id);
        command.Parameters.AddWithValue("customer_id", row.CustomerId);
        command.Parameters.AddWithValue("amount", row.Amount);
        command.Parameters.AddWithValue("status", row.Status);

        // Npgsql writes timestamptz only from UTC values.
        command.Parameters.AddWithValue("updated_at", row.UpdatedAt.ToUniversalTime());
        return command;
    }

    private NpgsqlCommand Delete(long id)
    {
        // Finds nothing when the order went with its customer: the replica cascaded that delete already.
        var command = replica.DataSource.CreateCommand("DELETE FROM orders WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return command;
    }
}
