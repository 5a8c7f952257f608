using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>
/// Applies customer changes to the replica. Every statement is idempotent, because a change can be
/// delivered twice after a crash: upserts instead of inserts, deletes that accept a missing row.
/// </summary>
/// <param name="replica">The replica database.</param>
/// <param name="statistics">Counts applied events.</param>
public sealed class CustomerHandler(ReplicaDatabase replica, SyncStatistics statistics) : IRowHandler<Customer>
{
    /// <inheritdoc />
    public async Task HandleAsync(RowChange<Customer> change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        await using var command = change.Kind switch
        {
            ChangeKind.Insert or ChangeKind.Update => Upsert(change.Row!),
            ChangeKind.Delete => Delete(change.Row!.Id),

            // The source cannot truncate customers without truncating orders too.
            ChangeKind.Truncate => replica.DataSource.CreateCommand("TRUNCATE customers CASCADE"),
            _ => throw new NotSupportedException($"Unexpected change kind {change.Kind}."),
        };
        await command.ExecuteNonQueryAsync(cancellationToken);
        statistics.RecordApplied();
    }

    private NpgsqlCommand Upsert(Customer row)
    {
        var command = replica.DataSource.CreateCommand(
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

    private NpgsqlCommand Delete(long id)
    {
        // The source's cascade deletes of this customer's orders are delivered right after this
        // event (PostgreSQL runs a cascade after the statement that caused it); the replica's own
        // ON DELETE CASCADE removes them now, so its foreign key holds at every step.
        var command = replica.DataSource.CreateCommand("DELETE FROM customers WHERE id = @id");
        command.Parameters.AddWithValue("id", id);
        return command;
    }
}
