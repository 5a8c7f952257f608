using Npgsql;

namespace PgEvents.Samples.Jobs;

/// <summary>
/// Turns "an order became paid" into a receipt job. The job row is written through the transaction
/// that also moves the consumer's cursor past the event, so each payment enqueues exactly one job:
/// a crash or a failed attempt rolls back both the job and the cursor, and the retry writes it again.
/// </summary>
public sealed class ReceiptJobHandler(FlakyDependency flaky) : IRowHandler<Order>
{
    public async Task HandleAsync(RowChange<Order> change, CancellationToken cancellationToken)
    {
        if (change.Row is not { } order)
        {
            return; // a truncate carries no row
        }

        var becamePaid = change.Kind switch
        {
            ChangeKind.Insert => order.Status == "paid",
            ChangeKind.Update => order.Status == "paid" && change.OldRow?.Status != "paid",
            _ => false,
        };
        if (!becamePaid)
        {
            return;
        }

        var transaction = await change.GetTransactionAsync(cancellationToken);
        await using (var enqueue = new NpgsqlCommand(
            "INSERT INTO jobs (kind, order_id, customer, total) VALUES ('receipt', @order, @customer, @total)",
            transaction.Connection, transaction))
        {
            enqueue.Parameters.AddWithValue("order", order.Id);
            enqueue.Parameters.AddWithValue("customer", order.Customer);
            enqueue.Parameters.AddWithValue("total", order.Total);
            await enqueue.ExecuteNonQueryAsync(cancellationToken);
        }

        // Fails after the job row was written: the retry must not leave a second job behind.
        flaky.ThrowOnFirstCall(order.Id);
    }
}
