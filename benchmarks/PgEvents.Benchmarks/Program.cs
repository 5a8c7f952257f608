using System.Diagnostics;
using Npgsql;
using PgEvents.Benchmarks;
using PgEvents.Testing;

// dotnet run --project benchmarks/PgEvents.Benchmarks -c Release -- [--quick] [--only write|latency|throughput|scale|rowsize|txsize|logsize|memory|replica|snapshot]
// dotnet run --project benchmarks/PgEvents.Benchmarks -c Release -- --consume "<connection string>" <table>   (used by benchmarks/pgbench)
var consumeIndex = Array.IndexOf(args, "--consume");
if (consumeIndex >= 0 && consumeIndex + 2 < args.Length)
{
    await ConsumeMode.RunAsync(args[consumeIndex + 1], args[consumeIndex + 2]);
    return 0;
}

var drainIndex = Array.IndexOf(args, "--memory-drain");
if (drainIndex >= 0 && drainIndex + 2 < args.Length)
{
    return await MemoryBenchmark.DrainAsync(args[drainIndex + 1], long.Parse(args[drainIndex + 2], System.Globalization.CultureInfo.InvariantCulture));
}

var quick = args.Contains("--quick");
var onlyIndex = Array.IndexOf(args, "--only");
var only = onlyIndex >= 0 && onlyIndex + 1 < args.Length ? args[onlyIndex + 1] : null;

// One durable server for every design: the figures are what production settings give.
await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { Durable = true });
var report = new Report();
var total = Stopwatch.StartNew();
report.Line($"# PgEvents benchmark results ({(quick ? "quick" : "full")} run, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
report.Line();
await using (var connection = new NpgsqlConnection(server.ConnectionString))
{
    await connection.OpenAsync();
    var settings = new List<string>();
    foreach (var setting in new[] { "server_version", "fsync", "synchronous_commit", "shared_buffers", "wal_level" })
    {
        await using var show = new NpgsqlCommand($"SHOW {setting}", connection);
        settings.Add($"{setting}={await show.ExecuteScalarAsync()}");
    }

    report.Line($"Machine: {Environment.ProcessorCount} cores, {GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1L << 30)} GiB; server ({server.Kind}): {string.Join(", ", settings)}.");
    report.Line();
}

if (only is null or "write")
{
    await WriteOverheadBenchmark.RunAsync(server, report, quick);
}

if (only is null or "latency")
{
    await LatencyBenchmark.RunAsync(server, report, quick);
}

if (only is null or "throughput")
{
    await CatchUpBenchmark.RunAsync(server, report, quick);
}

if (only is null or "scale" or "rowsize" or "txsize" or "logsize")
{
    await ScaleBenchmark.RunAsync(server, report, quick, only is "rowsize" or "txsize" or "logsize" ? only : null);
}

if (only is "replica")
{
    await ReplicaBenchmark.RunAsync(server, report, quick);
}

if (only is "snapshot")
{
    await SnapshotBenchmark.RunAsync(server, report, quick);
}

if (only is "memory")
{
    await MemoryBenchmark.RunAsync(server, report);
}

report.Line($"Total time: {total.Elapsed.TotalMinutes:0.0} min.");
var fileName = (quick ? "quick" : "latest") + (only is null ? string.Empty : "-" + only) + ".md";
await report.SaveAsync(Path.Combine(FindBenchmarksDirectory(), "results", fileName));
return 0;

static string FindBenchmarksDirectory()
{
    for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
    {
        var candidate = Path.Combine(directory.FullName, "benchmarks");
        if (Directory.Exists(candidate))
        {
            return candidate;
        }
    }

    return Path.Combine(Directory.GetCurrentDirectory(), "benchmarks");
}
