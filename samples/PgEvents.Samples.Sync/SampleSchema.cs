using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>The two tables the sample keeps in sync, created identically in both databases except for one clause.</summary>
public static class SampleSchema
{
    /// <summary>Drops and recreates <c>customers</c> and <c>orders</c>.</summary>
    /// <param name="database">The database to (re)create them in.</param>
    /// <param name="cascadeDeletes">
    /// True in the source: deleting a customer deletes its orders. False in the replica: there the
    /// foreign key only checks, so a customer delete applied before its orders' deletes would fail.
    /// It never does, because events arrive in commit order, cascaded deletes first.
    /// </param>
    /// <param name="cancellationToken">Cancels the statements.</param>
    /// <returns>A task that completes when the tables exist and are empty.</returns>
    public static async Task CreateAsync(NpgsqlDataSource database, bool cascadeDeletes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);

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
                customer_id bigint        NOT NULL REFERENCES customers (id){(cascadeDeletes ? " ON DELETE CASCADE" : string.Empty)},
                amount      numeric(12,2) NOT NULL,
                status      text          NOT NULL,
                updated_at  timestamptz   NOT NULL
            );
            CREATE INDEX ON orders (customer_id);
            """);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
