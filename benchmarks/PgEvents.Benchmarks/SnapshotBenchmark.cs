using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// Rows per second an initial snapshot delivers from a table that was filled before the consumer
/// existed: into a no-op row handler, a no-op batch handler, and a real replica (one multi-row
/// upsert per batch). The time runs from consumer start until the handlers counted every row, so it
/// includes writing the chunks into the log and reading them back. What a running snapshot costs
/// concurrent writers is measured with pgbench (<c>benchmarks/pgbench/snapshot-cost.sh</c>).
/// </summary>
internal static class SnapshotBenchmark
{
    public static async Task RunAsync(PostgresServer server, Report report, bool quick)
    {
        var rows = quick ? 100_000 : 1_000_000;
        report.Line("## 7. Initial snapshot of an existing table");
        report.Line();
        report.Line($"{rows:N0} rows of about 150 bytes, filled before the consumer existed; default chunk size (1,000 rows) unless stated.");
        report.Line();
        var table = new List<string[]>();
        foreach (var (label, map, chunk) in new (string, Func<PgEventsBuilder, string, PgEventsBuilder>, int)[]
                 {
                     ("no-op row handler", (b, t) => b.AddHandler<BenchRow, CountingHandler>(t), 1000),
                     ("no-op batch handler", (b, t) => b.AddBatchHandler<CountingBatchHandler>(t), 1000),
                     ("no-op batch handler, chunks of 10,000", (b, t) => b.AddBatchHandler<CountingBatchHandler>(t), 10_000),
                     ("replica, one upsert per batch", (b, t) => b.AddBatchHandler<ReplicaBatchHandler>(t), 1000),
                 })
        {
            var (seconds, delivered) = await MeasureAsync(server, rows, map, chunk);
            table.Add([label, delivered.ToString("N0", CultureInfo.InvariantCulture), seconds.ToString("0.0", CultureInfo.InvariantCulture), (delivered / seconds).ToString("N0", CultureInfo.InvariantCulture)]);
        }

        report.Table(["handler", "rows", "seconds", "rows/s"], table);
    }

    private static async Task<(double Seconds, long Delivered)> MeasureAsync(
        PostgresServer server, int rows, Func<PgEventsBuilder, string, PgEventsBuilder> map, int chunk)
    {
        var source = await server.CreateDatabaseAsync("snapshot_source");
        var replica = await server.CreateDatabaseAsync("snapshot_replica");
        await using (var data = NpgsqlDataSource.Create(source))
        {
            await Designs.ExecuteAsync(
                data,
                $"""
                CREATE TABLE bench (id bigint PRIMARY KEY, payload text NOT NULL, started bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
                INSERT INTO bench (id, payload, started) SELECT g, repeat(md5(g::text), 3), g FROM generate_series(1, {rows}) g;
                VACUUM ANALYZE bench;
                """);
        }

        await using (var target = NpgsqlDataSource.Create(replica))
        {
            await Designs.ExecuteAsync(target, "CREATE TABLE bench (id bigint PRIMARY KEY, payload text NOT NULL, started bigint NOT NULL)");
        }

        var services = new ServiceCollection();
        services.AddSingleton(_ => new ReplicaTarget(replica));
        map(services.AddPgEvents(o =>
        {
            o.ConnectionString = source;
            o.ConsumerName = "snapshot";
            o.Retention.Age = null;
            o.InitialSnapshot = true;
            o.SnapshotChunkSize = chunk;
        }), "bench");
        var result = await ConsumerDrain.RunAsync(services, rows);
        await server.DropDatabaseAsync(source);
        await server.DropDatabaseAsync(replica);
        return result;
    }
}

/// <summary>Counts the changes of each batch and does nothing else.</summary>
internal sealed class CountingBatchHandler : IBatchHandler
{
    public Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        CountingHandler.Add(batch.Count);
        return Task.CompletedTask;
    }
}
