using Npgsql;

namespace PgEvents;

/// <summary>
/// Lazily opens, for handlers that ask, the transaction that will also carry the cursor update of
/// the event being delivered. Handlers that never ask cost nothing.
/// </summary>
internal sealed class EventTransactionScope(NpgsqlConnection connection) : IAsyncDisposable
{
    public NpgsqlTransaction? Transaction { get; private set; }

    public async ValueTask<NpgsqlTransaction> GetAsync(CancellationToken cancellationToken) =>
        Transaction ??= await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        if (Transaction is not null)
        {
            await Transaction.DisposeAsync().ConfigureAwait(false);
            Transaction = null;
        }
    }
}
