using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgEvents;
using PgEvents.Samples.Jobs;
using PgEvents.Testing;

// Starts background jobs from row changes: when an order becomes paid, PgEvents queues a receipt job
// in the same transaction that advances its cursor, and a worker runs the queue. One order's handler
// fails once after writing its job, to show that the retry leaves exactly one job behind. At the end
// every paid order must have exactly one receipt sent, and nothing else any.

const string Usage =
    """
    Usage: dotnet run --project samples/PgEvents.Samples.Jobs -c Release [-- options]

      --connection <cs>  database connection string (or env PGEVENTS_SAMPLE_CONNECTION)
      --orders <n>       orders to create, default 300

    Without a connection string a throwaway PostgreSQL is started (PgEvents.Testing). With one, the
    tables orders and jobs are DROPPED and recreated.
    """;

const long FailingOrderId = 7;
var connectionString = Environment.GetEnvironmentVariable("PGEVENTS_SAMPLE_CONNECTION") is { Length: > 0 } fromEnvironment ? fromEnvironment : null;
var orders = 300;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "-h" or "--help":
            Console.WriteLine(Usage);
            return 0;
        case "--connection" when i + 1 < args.Length:
            connectionString = args[++i];
            break;
        case "--orders" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count is >= 10 and <= 1_000_000:
            orders = count;
            i++;
            break;
        default:
            Console.Error.WriteLine($"Unknown or incomplete option '{args[i]}' (--orders takes 10 to 1000000).");
            Console.Error.WriteLine(Usage);
            return 2;
    }
}

PostgresServer? server = null;
try
{
    if (connectionString is null)
    {
        server = await PostgresServer.StartAsync();
        connectionString = await server.CreateDatabaseAsync("jobs");
        Console.WriteLine($"Mode: throwaway PostgreSQL ({server.Kind}), database {new NpgsqlConnectionStringBuilder(connectionString).Database}.");
    }

    return await RunAsync(connectionString, orders);
}
catch (Exception e) when (e is NpgsqlException or PgEventsException or InvalidOperationException or TimeoutException)
{
    Console.Error.WriteLine($"FAILED: {e}");
    return 1;
}
finally
{
    if (server is not null)
    {
        await server.DisposeAsync();
    }
}

static async Task<int> RunAsync(string connectionString, int orders)
{
    var builder = Host.CreateApplicationBuilder();
    builder.Logging.ClearProviders().AddSimpleConsole(o => o.SingleLine = true);
    builder.Logging.AddFilter("Microsoft", LogLevel.Warning).AddFilter("PgEvents", LogLevel.Warning).AddFilter("Npgsql", LogLevel.Warning);

    await using var dataSource = NpgsqlDataSource.Create(connectionString);
    builder.Services.AddSingleton(new JobDatabase(dataSource));
    builder.Services.AddSingleton(new FlakyDependency(FailingOrderId));
    builder.Services.AddSingleton<JobWorker>();
    builder.Services.AddHostedService(services => services.GetRequiredService<JobWorker>());
    builder.Services
        .AddPgEvents(o =>
        {
            o.ConnectionString = connectionString;
            o.ConsumerName = "receipts";
            o.Retry.InitialDelay = TimeSpan.FromMilliseconds(200);
        })
        .AddHandler<Order, ReceiptJobHandler>("orders");

    using var host = builder.Build();
    var consumer = host.Services.GetRequiredService<IEventConsumer>();
    var worker = host.Services.GetRequiredService<JobWorker>();
    var flaky = host.Services.GetRequiredService<FlakyDependency>();

    await JobSchema.CreateAsync(dataSource, CancellationToken.None);
    await consumer.InstallAsync();
    var initial = await consumer.GetStatusAsync();
    if (initial.LagEvents > 0)
    {
        // Left by an earlier run against this database, about tables that were just recreated.
        Console.WriteLine($"Skipping {initial.LagEvents} events left in the log by an earlier run.");
        await consumer.ResetCursorToPositionAsync(initial.HeadPosition + 1);
    }

    await host.StartAsync();
    try
    {
        var clock = Stopwatch.StartNew();
        var expectedPaid = await WriteOrdersAsync(dataSource, orders);
        Console.WriteLine($"[{clock.Elapsed.TotalSeconds,5:0.0}s] {orders} orders written; {expectedPaid} of them paid. Waiting for the receipts...");

        var deadline = Stopwatch.StartNew();
        ConsumerStatus status;
        while (true)
        {
            status = await consumer.GetStatusAsync();
            Console.WriteLine($"[{clock.Elapsed.TotalSeconds,5:0.0}s] receipts sent: {worker.Done,6} | consumer lag: {status.LagEvents,5} events" +
                (status.Blocked is { } blocked ? $" | retrying order event at position {blocked.Position}: {blocked.LastError}" : string.Empty));
            if ((worker.Done >= expectedPaid && status.LagEvents == 0) || deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500));
        }

        var problems = await VerifyAsync(dataSource, expectedPaid);
        if (flaky.Failures != 1)
        {
            problems.Add($"the simulated failure on order {FailingOrderId} should have happened once, it happened {flaky.Failures} times");
        }

        if (problems.Count > 0)
        {
            Console.WriteLine("VERDICT: FAILED - " + string.Join("; ", problems));
            return 1;
        }

        Console.WriteLine(
            $"VERDICT: every one of the {expectedPaid} paid orders got exactly one receipt, no other order got one, " +
            $"and the handler that failed once on order {FailingOrderId} after queueing its job left no duplicate.");
        return 0;
    }
    finally
    {
        await host.StopAsync();
    }
}

// Orders arrive as new, most are paid later (single-row and multi-row updates), some are paid on
// arrival, some are cancelled, and some paid orders are edited again, which must not send a second receipt.
static async Task<long> WriteOrdersAsync(NpgsqlDataSource dataSource, int orders)
{
    const int PerTransaction = 10;
    for (var from = 1; from <= orders; from += PerTransaction)
    {
        await ExecuteAsync(dataSource,
            "INSERT INTO orders SELECT g, 'customer-' || g, g * 1.25, 'new' FROM generate_series(@from::bigint, @to::bigint) g",
            from, Math.Min(orders, from + PerTransaction - 1));
    }

    for (var id = 1; id <= orders; id++)
    {
        if (id % 3 == 0)
        {
            await ExecuteAsync(dataSource, "UPDATE orders SET status = 'cancelled' WHERE id = @from", id, id);
        }
        else if (id % 3 == 1)
        {
            await ExecuteAsync(dataSource, "UPDATE orders SET status = 'paid' WHERE id = @from", id, id);
        }
    }

    await ExecuteAsync(dataSource, "UPDATE orders SET status = 'paid' WHERE id % 3 = 2 AND id BETWEEN @from AND @to", 1, orders);
    await ExecuteAsync(dataSource,
        "INSERT INTO orders SELECT g, 'customer-' || g, 9.99, 'paid' FROM generate_series(@from::bigint, @to::bigint) g",
        orders + 1, orders + 10);
    await ExecuteAsync(dataSource, "UPDATE orders SET total = total + 1 WHERE status = 'paid' AND id BETWEEN @from AND @to", 1, 30);

    await using var count = dataSource.CreateCommand("SELECT count(*) FROM orders WHERE status = 'paid'");
    return (long)(await count.ExecuteScalarAsync())!;
}

static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql, long from, long to)
{
    await using var command = dataSource.CreateCommand(sql);
    command.Parameters.AddWithValue("from", from);
    command.Parameters.AddWithValue("to", to);
    await command.ExecuteNonQueryAsync();
}

static async Task<List<string>> VerifyAsync(NpgsqlDataSource dataSource, long expectedPaid)
{
    var problems = new List<string>();
    (string Sql, string Problem)[] checks =
    [
        ("SELECT count(*) FROM (SELECT order_id FROM jobs GROUP BY order_id HAVING count(*) > 1) d", "orders with more than one receipt job"),
        ("SELECT count(*) FROM orders o WHERE o.status = 'paid' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.order_id = o.id)", "paid orders without a receipt job"),
        ("SELECT count(*) FROM jobs j JOIN orders o ON o.id = j.order_id WHERE o.status <> 'paid'", "receipt jobs for orders that are not paid"),
        ("SELECT count(*) FROM jobs WHERE done_at IS NULL", "receipt jobs never run"),
    ];
    foreach (var (sql, problem) in checks)
    {
        await using var command = dataSource.CreateCommand(sql);
        var found = (long)(await command.ExecuteScalarAsync())!;
        if (found > 0)
        {
            problems.Add($"{found} {problem}");
        }
    }

    await using var jobs = dataSource.CreateCommand("SELECT count(*) FROM jobs");
    var total = (long)(await jobs.ExecuteScalarAsync())!;
    if (total != expectedPaid)
    {
        problems.Add($"{total} receipt jobs for {expectedPaid} paid orders");
    }

    return problems;
}
