using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>The two tables the sample keeps in sync, created identically in both databases.</summary>
public static class SampleSchema
{
    /// <summary>Drops and recreates <c>customers</c> and <c>orders</c>.</summary>
    /// <param name="database">The database to (re)create them in.</param>
    /// <param name="cancellationToken">Cancels the statements.</param>
    /// <returns>A task that completes when the tables exist and are empty.</returns>
    /// <remarks>
    /// The replica keeps its foreign key, so applying an order before the customer it references
    /// would fail: commit order is what makes it never happen. The replica needs ON DELETE CASCADE
    /// as much as the source, though: PostgreSQL runs a cascade after the statement that caused it,
    /// so a customer's delete is captured (and delivered) before the deletes of its orders. The
    /// replica's own cascade removes the orders; their delete events then find nothing to delete.
    /// </remarks>
    public static async Task CreateAsync(NpgsqlDataSource database, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);

        // A previous run against the same databases left its rows; start both sides empty.
        await using var command = database.CreateCommand(
            """
            DROP TABLE IF EXISTS orders, customers;
            CREATE TABLE customers (
                id          bigint      PRIMARY KEY,
                name        text        NOT NULL,
                email       text        NOT NULL,
                created_at  timestamptz NOT NULL
            );
            CREATE TABLE orders (
                id          bigint        PRIMARY KEY,
                customer_id bigint        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
                amount      numeric(12,2) NOT NULL,
                status      text          NOT NULL,
                updated_at  timestamptz   NOT NULL
            );
            CREATE INDEX ON orders (customer_id);
            """);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
