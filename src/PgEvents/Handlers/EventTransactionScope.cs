using Npgsql;

namespace PgEvents;

/// <summary>
/// Lazily opens, for handlers that ask, the transaction that will also carry the cursor update of
/// the event being delivered. Handlers that never ask cost nothing.
/// </summary>
internal sealed class EventTransactionScope(NpgsqlConnection connection, bool available = true) : IAsyncDisposable
{
    public NpgsqlTransaction? Transaction { get; private set; }

    public async ValueTask<NpgsqlTransaction> GetAsync(CancellationToken cancellationToken)
    {
        if (!available)
        {
            // Lanes run handlers concurrently, and the consumer's one connection cannot hold a
            // transaction for each of them.
            throw new InvalidOperationException(
                "GetTransactionAsync is not available with PgEventsOptions.DeliveryLanes above 1: lanes run handlers concurrently. " +
                "Use one lane for a projection that must commit with the cursor.");
        }

        return Transaction ??= await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (Transaction is not null)
        {
            await Transaction.DisposeAsync().ConfigureAwait(false);
            Transaction = null;
        }
    }
}
