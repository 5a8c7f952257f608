using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>
/// Applies each delivered batch of customer and order changes to the replica in one transaction
/// and one round trip: the replica flushes its WAL once per batch instead of once per change, and
/// (with <see cref="BatchBoundary.Transaction"/>) never shows part of a source transaction. Every
/// statement is idempotent, because a batch can be delivered again after a crash: upserts instead
/// of inserts, deletes that accept a missing row. Snapshot changes (the rows the source held before
/// the consumer first started) are upserts as well.
/// </summary>
/// <param name="replica">The replica database.</param>
/// <param name="statistics">Counts applied events and batches.</param>
public sealed class ReplicaBatchHandler(ReplicaDatabase replica, SyncStatistics statistics) : IBatchHandler
{
    private static readonly TableName Customers = TableName.Parse("public.customers");
    private static readonly TableName Orders = TableName.Parse("public.orders");

    /// <inheritdoc />
    public async Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        await using var connection = await replica.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var statements = new NpgsqlBatch(connection, transaction);

        // In delivery order: the replica's foreign key holds after every statement, as the source's did.
        foreach (var change in batch)
        {
            statements.BatchCommands.Add(ToCommand(change));
        }

        await statements.ExecuteNonQueryAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        statistics.RecordApplied(batch.Count);
    }

    private static NpgsqlBatchCommand ToCommand(RowChange change)
    {
        if (change.Table == Customers)
        {
            return change.Kind switch
            {
                // A snapshot image is the row as it stood at its place in the log: an upsert too.
                ChangeKind.Insert or ChangeKind.Update or ChangeKind.Snapshot => UpsertCustomer(change.GetRow<Customer>()!),
                ChangeKind.Delete => DeleteById("customers", change.GetRow<Customer>()!.Id),

                // The source cannot truncate customers without truncating orders, which is captured too.
                ChangeKind.Truncate => new NpgsqlBatchCommand("TRUNCATE customers"),
                _ => throw new NotSupportedException($"Unexpected change kind {change.Kind}."),
            };
        }

        if (change.Table == Orders)
        {
            return change.Kind switch
            {
                ChangeKind.Insert or ChangeKind.Update or ChangeKind.Snapshot => UpsertOrder(change.GetRow<Order>()!),
                ChangeKind.Delete => DeleteById("orders", change.GetRow<Order>()!.Id),
                ChangeKind.Truncate => new NpgsqlBatchCommand("TRUNCATE orders"),
                _ => throw new NotSupportedException($"Unexpected change kind {change.Kind}."),
            };
        }

        throw new InvalidOperationException($"The replica has no table for {change.Table}.");
    }

    private static NpgsqlBatchCommand UpsertCustomer(Customer row)
    {
        var command = new NpgsqlBatchCommand(
            """
            INSERT INTO customers (id, name, email, created_at) VALUES (@id, @name, @email, @created_at)
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, created_at = EXCLUDED.created_at
            """);
        command.Parameters.AddWithValue("id", row.Id);
        command.Parameters.AddWithValue("name", row.Name);
        command.Parameters.AddWithValue("email", row.Email);

        // Npgsql writes timestamptz only from UTC values.
        command.Parameters.AddWithValue("created_at", row.CreatedAt.ToUniversalTime());
        return command;
    }

    private static NpgsqlBatchCommand UpsertOrder(Order row)
    {
        var command = new NpgsqlBatchCommand(
            """
            INSERT INTO orders (id, customer_id, amount, status, updated_at) VALUES (@id, @customer_id, @amount, @status, @updated_at)
            ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id, amount = EXCLUDED.amount,
                                           status = EXCLUDED.status, updated_at = EXCLUDED.updated_at
            """);
        command.Parameters.AddWithValue("id", row.Id);
        command.Parameters.AddWithValue("customer_id", row.CustomerId);
        command.Parameters.AddWithValue("amount", row.Amount);
        command.Parameters.AddWithValue("status", row.Status);
        command.Parameters.AddWithValue("updated_at", row.UpdatedAt.ToUniversalTime());
        return command;
    }

    // The table name is one of two constants above, never data: only values travel as parameters.
    private static NpgsqlBatchCommand DeleteById(string table, long id)
    {
        var command = new NpgsqlBatchCommand($"DELETE FROM {table} WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return command;
    }
}
