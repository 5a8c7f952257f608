using Npgsql;

namespace PgEvents.Samples.Jobs;

/// <summary>The sample's tables: the orders the application writes, and the job queue PgEvents feeds.</summary>
public static class JobSchema
{
    public static async Task CreateAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            DROP TABLE IF EXISTS orders, jobs;
            CREATE TABLE orders (
                id       bigint PRIMARY KEY,
                customer text NOT NULL,
                total    numeric(12,2) NOT NULL,
                status   text NOT NULL CHECK (status IN ('new', 'paid', 'cancelled'))
            );
            CREATE TABLE jobs (
                id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                kind        text NOT NULL,
                order_id    bigint NOT NULL,
                customer    text NOT NULL,
                total       numeric(12,2) NOT NULL,
                enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                done_at     timestamptz
            );
            CREATE INDEX jobs_pending ON jobs (id) WHERE done_at IS NULL;
            """);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
