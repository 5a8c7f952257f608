using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// Events per second delivered to no-op handlers (rows deserialized into <see cref="BenchRow"/>)
/// when a consumer starts in front of a backlog: the backlog is written first, in transactions of
/// 1000 rows, then the clock runs from consumer start until its cursor reaches the head.
/// </summary>
internal static class CatchUpBenchmark
{
    public static async Task RunAsync(PostgresServer server, Report report, bool quick)
    {
        var events = quick ? 100_000 : 1_000_000;
        report.Line("## 3. Consumer throughput (catch-up)");
        report.Line();
        var one = await MeasureAsync(server, events, tables: 1, payloadBytes: 100);
        var ten = await MeasureAsync(server, events, tables: 10, payloadBytes: 100);
        report.Table(
            ["backlog", "tables mapped", "seconds", "events/s"],
            [
                [events.ToString("N0", CultureInfo.InvariantCulture), "1", one.Seconds.ToString("0.0", CultureInfo.InvariantCulture), one.PerSecond.ToString("N0", CultureInfo.InvariantCulture)],
                [events.ToString("N0", CultureInfo.InvariantCulture), "10", ten.Seconds.ToString("0.0", CultureInfo.InvariantCulture), ten.PerSecond.ToString("N0", CultureInfo.InvariantCulture)],
            ]);
    }

    public static async Task<(double Seconds, double PerSecond)> MeasureAsync(PostgresServer server, int events, int tables, int payloadBytes, int rowsPerTransaction = 1000)
    {
        var connectionString = await server.CreateDatabaseAsync("catchup");
        for (var t = 0; t < tables; t++)
        {
            await Designs.CreateAsync(connectionString, Design.PgEvents, Table(t));
        }

        await WriteBacklogAsync(connectionString, events, tables, payloadBytes, rowsPerTransaction);

        var services = new ServiceCollection();
        var builder = services.AddPgEvents(o => { o.ConnectionString = connectionString; o.ConsumerName = "catchup"; o.Retention.Age = null; });
        for (var t = 0; t < tables; t++)
        {
            builder.AddHandler<BenchRow, CountingHandler>(Table(t));
        }

        var (seconds, _) = await ConsumerDrain.RunAsync(services, events);
        await server.DropDatabaseAsync(connectionString);
        return (seconds, events / seconds);
    }

    internal static string Table(int index) => index == 0 ? "bench" : "bench_" + index.ToString(CultureInfo.InvariantCulture);

    internal static async Task WriteBacklogAsync(string connectionString, int events, int tables, int payloadBytes, int rowsPerTransaction = 1000)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var perTransaction = Math.Min(rowsPerTransaction, Math.Max(1, 20_000_000 / Math.Max(payloadBytes, 1)));
        var written = 0;
        var transaction = 0;
        while (written < events)
        {
            var count = Math.Min(perTransaction, events - written);
            await using var insert = dataSource.CreateCommand(
                $"INSERT INTO \"{Table(transaction % tables)}\" SELECT g, repeat('x', @size), 1 FROM generate_series(@from::bigint, @to::bigint) g");
            insert.Parameters.AddWithValue("size", payloadBytes);
            insert.Parameters.AddWithValue("from", (long)written + 1);
            insert.Parameters.AddWithValue("to", (long)written + count);
            insert.CommandTimeout = 0;
            await insert.ExecuteNonQueryAsync();
            written += count;
            transaction++;
        }

        await Designs.ExecuteAsync(dataSource, "VACUUM ANALYZE pgevents.events;\nVACUUM ANALYZE pgevents.transactions");
    }
}

/// <summary>A no-op handler that only counts; the row is still deserialized before it is called.</summary>
internal sealed class CountingHandler : IRowHandler<BenchRow>
{
    private static long _count;

    public static long Count => Interlocked.Read(ref _count);

    public static void Reset() => Interlocked.Exchange(ref _count, 0);

    public static void Add(long count) => Interlocked.Add(ref _count, count);

    public Task HandleAsync(RowChange<BenchRow> change, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _count);
        return Task.CompletedTask;
    }
}
