using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>The two tables the sample keeps in sync, created alike in both databases.</summary>
public static class SampleSchema
{
    /// <summary>Drops and recreates <c>customers</c> and <c>orders</c>.</summary>
    /// <param name="database">The database to (re)create them in.</param>
    /// <param name="replica">Whether this is the replica, which has no foreign key.</param>
    /// <param name="cancellationToken">Cancels the statements.</param>
    /// <returns>A task that completes when the tables exist and are empty.</returns>
    /// <remarks>
    /// The replica does not enforce the source's foreign key: the source did, and a snapshot fills
    /// the replica in key-ordered chunks while live changes arrive, so a live order can reference a
    /// customer whose snapshot chunk is still to come. Once the snapshots are delivered the replica
    /// is what the source was at that point of the log, foreign key included. The source's
    /// ON DELETE CASCADE reaches the replica as the captured deletes of the orders.
    /// </remarks>
    public static async Task CreateAsync(NpgsqlDataSource database, bool replica, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);
        var customerReference = replica ? string.Empty : "REFERENCES customers (id) ON DELETE CASCADE";

        // A previous run against the same databases left its rows; start both sides empty.
        await using var command = database.CreateCommand(
            $"""
            DROP TABLE IF EXISTS orders, customers;
            CREATE TABLE customers (
                id          bigint      PRIMARY KEY,
                name        text        NOT NULL,
                email       text        NOT NULL,
                created_at  timestamptz NOT NULL
            );
            CREATE TABLE orders (
                id          bigint        PRIMARY KEY,
                customer_id bigint        NOT NULL {customerReference},
                amount      numeric(12,2) NOT NULL,
                status      text          NOT NULL,
                updated_at  timestamptz   NOT NULL
            );
            CREATE INDEX ON orders (customer_id);
            """);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Fills the source with <paramref name="customers"/> customers and three orders each, as an
    /// application would have before it adopted PgEvents: nothing captures these inserts.
    /// </summary>
    /// <param name="source">The source database.</param>
    /// <param name="customers">How many customers to create.</param>
    /// <param name="cancellationToken">Cancels the statements.</param>
    /// <returns>A task that completes when the rows are committed.</returns>
    public static async Task SeedAsync(NpgsqlDataSource source, int customers, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        await using var command = source.CreateCommand(
            """
            INSERT INTO customers (id, name, email, created_at)
            SELECT g, 'Customer ' || g, 'customer' || g || '@example.com', now() - g * interval '1 minute'
              FROM generate_series(1, @customers) g;
            INSERT INTO orders (id, customer_id, amount, status, updated_at)
            SELECT g, (g + 2) / 3, (g % 99900 + 100) / 100.0, 'paid', now() - g * interval '1 second'
              FROM generate_series(1, @customers * 3) g;
            ANALYZE customers, orders;
            """);
        command.Parameters.AddWithValue("customers", customers);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
