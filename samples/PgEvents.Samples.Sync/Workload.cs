using System.Collections.Concurrent;
using System.Diagnostics;
using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>
/// Concurrent writers doing random business transactions against the source: the interleavings
/// the replica must survive (cascades, concurrent deletes, rollbacks) happen on their own.
/// </summary>
/// <param name="source">The source database.</param>
/// <param name="writers">How many writers run at once, each on its own connection.</param>
/// <param name="duration">How long the writers keep starting transactions.</param>
/// <param name="existingCustomers">Customers already in the source (ids 1..n, three orders each); writers change them too.</param>
public sealed class Workload(NpgsqlDataSource source, int writers, TimeSpan duration, long existingCustomers = 0)
{
    private static readonly string[] Statuses = ["new", "paid", "shipped", "cancelled"];

    private readonly ConcurrentQueue<long> _rolledBackCustomerIds = new();
    private readonly ConcurrentQueue<long> _rolledBackOrderIds = new();
    private long _nextCustomerId = existingCustomers;
    private long _nextOrderId = existingCustomers * 3;
    private long _committed;
    private long _rolledBack;
    private long _skipped;

    /// <summary>Transactions that committed a change.</summary>
    public long Committed => Interlocked.Read(ref _committed);

    /// <summary>Transactions that wrote rows and were then rolled back on purpose.</summary>
    public long RolledBack => Interlocked.Read(ref _rolledBack);

    /// <summary>Transactions abandoned because there was nothing to pick yet or another writer got there first (row gone, customer deleted).</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>Customer ids written only by rolled-back transactions: they must never reach the replica.</summary>
    public IReadOnlyCollection<long> RolledBackCustomerIds => _rolledBackCustomerIds;

    /// <summary>Order ids written only by rolled-back transactions.</summary>
    public IReadOnlyCollection<long> RolledBackOrderIds => _rolledBackOrderIds;

    /// <summary>Runs the writers until the duration has passed; a transaction in progress then still completes.</summary>
    /// <param name="cancellationToken">Stops early (Ctrl+C).</param>
    /// <returns>A task that completes when every writer has stopped.</returns>
    public Task RunAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        return Task.WhenAll(Enumerable.Range(0, writers).Select(_ => WriteAsync(started, cancellationToken)).ToArray());
    }

    private async Task WriteAsync(long started, CancellationToken cancellationToken)
    {
        await using var connection = await source.OpenConnectionAsync(cancellationToken);
        while (!cancellationToken.IsCancellationRequested && Stopwatch.GetElapsedTime(started) < duration)
        {
            var dice = Random.Shared.Next(100);
            if (dice < 3)
            {
                await RollBackOnPurposeAsync(connection, cancellationToken);
                continue;
            }

            Func<NpgsqlConnection, CancellationToken, Task<bool>> work = dice switch
            {
                < 23 => CreateCustomerAsync,
                < 53 => CreateOrdersAsync,
                < 76 => UpdateOrderAsync,
                < 84 => DeleteOrderAsync,
                < 92 => ChangeEmailAsync,
                _ => DeleteCustomerAsync,
            };
            await InTransactionAsync(connection, work, cancellationToken);
        }
    }

    /// <summary>Commits when <paramref name="work"/> changed something, rolls back when it found nothing to change.</summary>
    private async Task InTransactionAsync(
        NpgsqlConnection connection, Func<NpgsqlConnection, CancellationToken, Task<bool>> work, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        bool changed;
        try
        {
            changed = await work(connection, cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.ForeignKeyViolation)
        {
            // The customer we picked was deleted by another writer before our insert: the source
            // refuses, as it should, and nothing of this transaction is ever delivered.
            changed = false;
        }

        if (changed)
        {
            await transaction.CommitAsync(cancellationToken);
            Interlocked.Increment(ref _committed);
        }
        else
        {
            await transaction.RollbackAsync(cancellationToken);
            Interlocked.Increment(ref _skipped);
        }
    }

    private async Task<bool> CreateCustomerAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await InsertCustomerAsync(connection, Interlocked.Increment(ref _nextCustomerId), cancellationToken);
        return true;
    }

    private async Task<bool> CreateOrdersAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (await PickCustomerAsync(connection, cancellationToken) is not { } customerId)
        {
            return false;
        }

        // Separate statements: the replica must get all of them, in this order, or none.
        for (var i = Random.Shared.Next(1, 4); i > 0; i--)
        {
            await InsertOrderAsync(connection, Interlocked.Increment(ref _nextOrderId), customerId, cancellationToken);
        }

        return true;
    }

    private async Task<bool> UpdateOrderAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (await PickOrderAsync(connection, cancellationToken) is not { } orderId)
        {
            return false;
        }

        await using var command = new NpgsqlCommand(
            "UPDATE orders SET status = @status, amount = @amount, updated_at = now() WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", orderId);
        command.Parameters.AddWithValue("status", Statuses[Random.Shared.Next(Statuses.Length)]);
        command.Parameters.AddWithValue("amount", RandomAmount());

        // Zero rows: another writer deleted the order since we picked it.
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private async Task<bool> DeleteOrderAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (await PickOrderAsync(connection, cancellationToken) is not { } orderId)
        {
            return false;
        }

        await using var command = new NpgsqlCommand("DELETE FROM orders WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", orderId);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private async Task<bool> ChangeEmailAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (await PickCustomerAsync(connection, cancellationToken) is not { } customerId)
        {
            return false;
        }

        await using var command = new NpgsqlCommand("UPDATE customers SET email = @email WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", customerId);
        command.Parameters.AddWithValue("email", $"customer{customerId}.{Random.Shared.Next(1000)}@example.com");
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private async Task<bool> DeleteCustomerAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (await PickCustomerAsync(connection, cancellationToken) is not { } customerId)
        {
            return false;
        }

        // ON DELETE CASCADE removes the customer's orders in this same transaction.
        await using var command = new NpgsqlCommand("DELETE FROM customers WHERE id = @id", connection);
        command.Parameters.AddWithValue("id", customerId);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    private async Task RollBackOnPurposeAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var customerId = Interlocked.Increment(ref _nextCustomerId);
        var orderId = Interlocked.Increment(ref _nextOrderId);
        await InsertCustomerAsync(connection, customerId, cancellationToken);
        await InsertOrderAsync(connection, orderId, customerId, cancellationToken);

        // The capture triggers have already logged both rows; the rollback discards those log rows too.
        await transaction.RollbackAsync(cancellationToken);
        _rolledBackCustomerIds.Enqueue(customerId);
        _rolledBackOrderIds.Enqueue(orderId);
        Interlocked.Increment(ref _rolledBack);
    }

    private static async Task InsertCustomerAsync(NpgsqlConnection connection, long id, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "INSERT INTO customers (id, name, email, created_at) VALUES (@id, @name, @email, now())", connection);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("name", $"Customer {id}");
        command.Parameters.AddWithValue("email", $"customer{id}@example.com");
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task InsertOrderAsync(NpgsqlConnection connection, long id, long customerId, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "INSERT INTO orders (id, customer_id, amount, status, updated_at) VALUES (@id, @customer_id, @amount, 'new', now())", connection);
        command.Parameters.AddWithValue("id", id);
        command.Parameters.AddWithValue("customer_id", customerId);
        command.Parameters.AddWithValue("amount", RandomAmount());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Picks an existing customer: the first at or after a random id, else the highest. An index
    /// probe, so it stays cheap as the table grows, unlike <c>ORDER BY random()</c>. Null when empty.
    /// </summary>
    private Task<long?> PickCustomerAsync(NpgsqlConnection connection, CancellationToken cancellationToken) => PickAsync(
        connection,
        "SELECT coalesce((SELECT id FROM customers WHERE id >= @from ORDER BY id LIMIT 1), (SELECT max(id) FROM customers))",
        Interlocked.Read(ref _nextCustomerId),
        cancellationToken);

    /// <summary>Picks an existing order, like <see cref="PickCustomerAsync"/>.</summary>
    private Task<long?> PickOrderAsync(NpgsqlConnection connection, CancellationToken cancellationToken) => PickAsync(
        connection,
        "SELECT coalesce((SELECT id FROM orders WHERE id >= @from ORDER BY id LIMIT 1), (SELECT max(id) FROM orders))",
        Interlocked.Read(ref _nextOrderId),
        cancellationToken);

    private static async Task<long?> PickAsync(NpgsqlConnection connection, string query, long highestIssued, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(query, connection);
        command.Parameters.AddWithValue("from", Random.Shared.NextInt64(1, highestIssued + 2));
        return await command.ExecuteScalarAsync(cancellationToken) is long id ? id : null;
    }

    private static decimal RandomAmount() => Random.Shared.Next(100, 100_000) / 100m;
}
