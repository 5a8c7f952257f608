using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgEvents;
using PgEvents.Samples.Sync;
using PgEvents.Testing;

// Keeps a replica database in sync with a source database that already holds rows: the consumer
// snapshots them while concurrent writers change the source, then the sample proves the replica
// ended up identical.

const string Usage =
    """
    Usage: dotnet run --project samples/PgEvents.Samples.Sync -c Release [-- options]

      --source <cs>    source database connection string (or env PGEVENTS_SAMPLE_SOURCE)
      --replica <cs>   replica database connection string (or env PGEVENTS_SAMPLE_REPLICA)
      --seconds <n>    how long the workload runs, default 10
      --writers <n>    concurrent writers, default 4
      --existing <n>   customers (with 3 orders each) in the source before the consumer starts, default 20000

    Without connection strings a throwaway PostgreSQL is started (PgEvents.Testing). With them, the
    tables customers and orders are DROPPED and recreated in both databases.
    """;

var sourceConnection = NullIfBlank(Environment.GetEnvironmentVariable("PGEVENTS_SAMPLE_SOURCE"));
var replicaConnection = NullIfBlank(Environment.GetEnvironmentVariable("PGEVENTS_SAMPLE_REPLICA"));
var seconds = 10;
var writers = 4;
var existing = 20_000;
for (var i = 0; i < args.Length; i++)
{
    var option = args[i];
    if (option is "-h" or "--help")
    {
        Console.WriteLine(Usage);
        return 0;
    }

    if (option is not ("--source" or "--replica" or "--seconds" or "--writers" or "--existing"))
    {
        return UsageError($"Unknown option '{option}'.");
    }

    if (i + 1 == args.Length)
    {
        return UsageError($"{option} needs a value.");
    }

    var value = args[++i];
    switch (option)
    {
        case "--source":
            sourceConnection = value;
            break;
        case "--replica":
            replicaConnection = value;
            break;
        case "--seconds" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed >= 1:
            seconds = parsed;
            break;
        case "--writers" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed is >= 1 and <= 64:
            writers = parsed;
            break;
        case "--existing" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed <= 10_000_000:
            existing = parsed;
            break;
        default:
            var range = option switch { "--seconds" => "at least 1", "--existing" => "0 to 10000000", _ => "1 to 64" };
            return UsageError($"{option} must be a whole number ({range}), not '{value}'.");
    }
}

if ((sourceConnection is null) != (replicaConnection is null))
{
    return UsageError("Give both a source and a replica connection string, or neither.");
}

PostgresServer? server = null;
try
{
    if (sourceConnection is null || replicaConnection is null)
    {
        Console.WriteLine("Mode: no connection strings given; using a throwaway PostgreSQL server (PgEvents.Testing) with two fresh databases.");
        server = await PostgresServer.StartAsync();
        sourceConnection = await server.CreateDatabaseAsync("sync_source");
        replicaConnection = await server.CreateDatabaseAsync("sync_replica");
        Console.WriteLine($"      {server.Kind} server; source {Describe(sourceConnection)}, replica {Describe(replicaConnection)}");
    }
    else
    {
        if (Describe(sourceConnection) == Describe(replicaConnection))
        {
            return UsageError("The source and the replica must be different databases.");
        }

        Console.WriteLine($"Mode: your databases; source {Describe(sourceConnection)}, replica {Describe(replicaConnection)}.");
        Console.WriteLine("      Tables customers and orders are dropped and recreated in both.");
    }

    return await RunAsync(sourceConnection, replicaConnection, TimeSpan.FromSeconds(seconds), writers, existing);
}
catch (Exception e) when (e is NpgsqlException or PgEventsException or InvalidOperationException or TimeoutException or ArgumentException)
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

static async Task<int> RunAsync(string sourceConnection, string replicaConnection, TimeSpan duration, int writers, int existing)
{
    var builder = Host.CreateApplicationBuilder();

    // Single-line warnings only, so that a retried delivery stands out between the progress lines.
    builder.Logging.ClearProviders().AddSimpleConsole(o => o.SingleLine = true);
    builder.Logging.AddFilter("Microsoft", LogLevel.Warning).AddFilter("PgEvents", LogLevel.Warning).AddFilter("Npgsql", LogLevel.Warning);

    builder.Services.AddSingleton<SyncStatistics>();
    builder.Services.AddSingleton(_ => new ReplicaDatabase(replicaConnection));
    builder.Services
        .AddPgEvents(o =>
        {
            o.ConnectionString = sourceConnection;
            o.ConsumerName = "replica-sync";

            // NOTIFY wakes the consumer when it sleeps; polling is only the safety net.
            o.PollInterval = TimeSpan.FromMilliseconds(500);

            // A batch never ends inside a source transaction: the replica never shows half of one.
            o.BatchBoundary = BatchBoundary.Transaction;

            // The rows the source held before this consumer first started arrive as Snapshot changes,
            // read in chunks between the live changes, in commit order with them.
            o.InitialSnapshot = true;
        })
        .AddBatchHandler<ReplicaBatchHandler>("public.customers", "public.orders");

    using var host = builder.Build();
    await using var source = NpgsqlDataSource.Create(sourceConnection);
    var replica = host.Services.GetRequiredService<ReplicaDatabase>().DataSource;
    var consumer = host.Services.GetRequiredService<IEventConsumer>();
    var statistics = host.Services.GetRequiredService<SyncStatistics>();
    var stopping = host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;

    await SampleSchema.CreateAsync(source, replica: false, CancellationToken.None);
    await SampleSchema.CreateAsync(replica, replica: true, CancellationToken.None);

    // The application's data from before PgEvents: no trigger sees these rows, the snapshot does.
    await SampleSchema.SeedAsync(source, existing, CancellationToken.None);
    Console.WriteLine($"Source holds {existing} customers and {existing * 3} orders; the replica is empty.");

    // The hosted service installs the capture triggers too, but in the background, after
    // StartAsync has returned; installing first guarantees that no write of the workload escapes.
    await consumer.InstallAsync();
    var initial = await consumer.GetStatusAsync();
    if (initial.LagEvents > 0)
    {
        // An earlier run against these databases stopped before catching up; its events describe
        // tables that were just recreated empty, so start after them.
        Console.WriteLine($"Skipping {initial.LagEvents} events left in the log by an earlier run.");
        await consumer.ResetCursorToPositionAsync(initial.HeadPosition + 1);
    }

    await host.StartAsync();
    try
    {
        var (started, active) = await WaitForAsync(consumer, s => s.IsActive, TimeSpan.FromSeconds(30), stopping);
        if (!active)
        {
            Console.WriteLine($"VERDICT: FAILED - consumer '{started.ConsumerName}' did not become active within 30 s (standby: {started.IsStandby}).");
            return 1;
        }

        var workload = new Workload(source, writers, duration, existing);
        Console.WriteLine($"Consumer '{started.ConsumerName}' is active. Running {writers} writers for {duration.TotalSeconds:0} s...");

        var clock = Stopwatch.StartNew();
        var maxLag = TimeSpan.Zero;
        var running = workload.RunAsync(stopping);
        using (var ticks = new PeriodicTimer(TimeSpan.FromSeconds(1)))
        {
            var tick = ticks.WaitForNextTickAsync(stopping).AsTask();
            while (await Task.WhenAny(running, tick) == tick && !stopping.IsCancellationRequested)
            {
                var status = await consumer.GetStatusAsync(stopping);
                maxLag = status.LagTime > maxLag ? status.LagTime : maxLag;
                Console.WriteLine(
                    $"[{clock.Elapsed.TotalSeconds,5:0.0}s] source commits: {workload.Committed,6} | events applied: {statistics.EventsApplied,6} in {statistics.BatchesApplied,5} batches | " +
                    $"lag: {status.LagEvents,5} events, {status.LagTime.TotalSeconds:0.00} s{Snapshots(status)}{Blocked(status)}");
                tick = ticks.WaitForNextTickAsync(stopping).AsTask();
            }
        }

        // Surfaces any writer failure other than the tolerated races.
        await running;
        stopping.ThrowIfCancellationRequested();
        var workloadTime = clock.Elapsed;
        Console.WriteLine(
            $"Workload done after {workloadTime.TotalSeconds:0.0} s: {workload.Committed} transactions committed, " +
            $"{workload.RolledBack} rolled back on purpose, {workload.Skipped} abandoned (nothing to pick yet, or another writer got there first).");

        Console.WriteLine("Waiting for the replica to catch up...");
        var (final, caughtUp) = await WaitForAsync(
            consumer,
            s => s.LagEvents == 0 && s.CursorPosition == s.HeadPosition && s.Snapshots.All(p => p.IsDelivered),
            TimeSpan.FromSeconds(120),
            stopping);
        if (!caughtUp)
        {
            Console.WriteLine(
                $"VERDICT: FAILED - the consumer did not catch up within 120 s: {final.LagEvents} events behind, " +
                $"cursor at position {final.CursorPosition}, head at {final.HeadPosition}{Snapshots(final)}{Blocked(final)}");
            return 1;
        }

        var catchUp = clock.Elapsed - workloadTime;
        foreach (var snapshot in final.Snapshots)
        {
            Console.WriteLine(
                $"Snapshot of {snapshot.Table}: {snapshot.RowsRead} rows in {snapshot.Chunks} chunks, " +
                $"read in {(snapshot.CompletedAt!.Value - snapshot.RequestedAt).TotalSeconds:0.00} s while the writers ran.");
        }

        Console.WriteLine(
            $"Caught up {catchUp.TotalSeconds:0.00} s after the workload stopped, at position {final.HeadPosition}. " +
            $"Largest lag seen while writing: {maxLag.TotalSeconds:0.00} s; {statistics.EventsApplied} events in {statistics.BatchesApplied} replica transactions " +
            $"({(double)statistics.EventsApplied / Math.Max(1, statistics.BatchesApplied):0.0} per transaction).");

        var tables = new[]
        {
            await DatabaseComparer.CompareCustomersAsync(source, replica, stopping),
            await DatabaseComparer.CompareOrdersAsync(source, replica, stopping),
        };
        var leaked = await DatabaseComparer.CountRolledBackRowsAsync(
            replica, workload.RolledBackCustomerIds, workload.RolledBackOrderIds, stopping);

        if (tables.All(t => t.Matches) && leaked == 0)
        {
            Console.WriteLine(
                $"VERDICT: replica matches source ({string.Join(", ", tables.Select(t => $"{t.Table}: {t.SourceRows} rows"))}, " +
                $"{statistics.EventsApplied} events applied, {workload.RolledBack} rolled-back transactions never arrived)");
            return 0;
        }

        Console.WriteLine(
            $"VERDICT: MISMATCH ({string.Join("; ", tables.Select(t => $"{t.Table}: source {t.SourceRows} rows, replica {t.ReplicaRows} rows, {t.DifferingRows} differing"))}; " +
            $"{leaked} rows of rolled-back transactions in the replica)");
        foreach (var difference in tables.SelectMany(t => t.FirstDifferences))
        {
            Console.WriteLine("  " + difference);
        }

        return 1;
    }
    catch (OperationCanceledException) when (stopping.IsCancellationRequested)
    {
        Console.WriteLine("Stopped early: Ctrl+C, or the consumer failed (see the log above). No verdict.");
        return 1;
    }
    finally
    {
        await host.StopAsync(CancellationToken.None);
    }
}

// Polls every 100 ms until the condition holds or the timeout passes; returns the last status seen.
static async Task<(ConsumerStatus Status, bool Reached)> WaitForAsync(
    IEventConsumer consumer, Func<ConsumerStatus, bool> condition, TimeSpan timeout, CancellationToken cancellationToken)
{
    var started = Stopwatch.GetTimestamp();
    while (true)
    {
        var status = await consumer.GetStatusAsync(cancellationToken);
        if (condition(status))
        {
            return (status, true);
        }

        if (Stopwatch.GetElapsedTime(started) >= timeout)
        {
            return (status, false);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
    }
}

// The snapshots still being read or delivered, if any.
static string Snapshots(ConsumerStatus status) =>
    string.Concat(status.Snapshots.Where(s => !s.IsDelivered).Select(s => $" | snapshot {s.Table.Name}: {s.RowsRead}/{s.RowsEstimated} rows"));

// First line of the error only: PostgreSQL errors continue with DETAIL lines.
static string Blocked(ConsumerStatus status) => status.Blocked is { } blocked
    ? $" | BLOCKED on {blocked.Table} at position {blocked.Position} after {blocked.Attempts} attempts: {blocked.LastError.Split('\n')[0]}"
    : string.Empty;

// Host, port and database only: a connection string may carry a password.
static string Describe(string connectionString)
{
    var builder = new NpgsqlConnectionStringBuilder(connectionString);
    return $"{builder.Host}:{builder.Port}/{builder.Database}";
}

static string? NullIfBlank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

static int UsageError(string message)
{
    Console.Error.WriteLine(message);
    Console.Error.WriteLine(Usage);
    return 2;
}
