using System.Diagnostics;
using PgEvents.Benchmarks;
using PgEvents.Testing;

// dotnet run --project benchmarks/PgEvents.Benchmarks -c Release -- [--quick] [--only write|latency|throughput|scale]
string[] scenarios = ["write", "latency", "throughput", "scale"];
var quick = args.Contains("--quick");
string? only = null;
for (var i = 0; i < args.Length; i++)
{
    if (args[i] == "--only" && i + 1 < args.Length && scenarios.Contains(args[i + 1]))
    {
        only = args[++i];
    }
    else if (args[i] != "--quick")
    {
        await Console.Error.WriteLineAsync($"Unknown argument '{args[i]}'. Usage: [--quick] [--only {string.Join('|', scenarios)}]");
        return 2;
    }
}

var profile = quick ? BenchmarkProfile.QuickProfile : BenchmarkProfile.Full;
var report = new MarkdownReport();
var total = Stopwatch.StartNew();

// One server for the whole run, so every design is measured with the same settings; durable,
// because commit cost is what production pays.
report.Progress("starting PostgreSQL (durable)");
await using var server = await PostgresServer.StartAsync(new PostgresServerOptions { Durable = true, AllowDocker = false });

report.Heading($"# PgEvents benchmark results ({(quick ? "quick" : "full")} run{(only is null ? string.Empty : ", only " + only)}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
await EnvironmentInfo.ReportAsync(report, server, profile);

var failed = false;
foreach (var (name, run) in new (string, Func<PostgresServer, MarkdownReport, BenchmarkProfile, Task>)[]
{
    ("write", WriteOverheadBenchmark.RunAsync),
    ("latency", LatencyBenchmark.RunAsync),
    ("throughput", CatchUpBenchmark.RunAsync),
    ("scale", ScaleBenchmark.RunAsync),
})
{
    if (only is not null && only != name)
    {
        continue;
    }

    var clock = Stopwatch.StartNew();
    try
    {
        await run(server, report, profile);
    }
    catch (Exception e) when (e is not OutOfMemoryException)
    {
        // One broken scenario (the library is being changed concurrently) should not cost the others' figures.
        failed = true;
        report.Paragraph($"**Scenario '{name}' failed** after {clock.Elapsed.TotalSeconds:0} s: {e.GetType().Name}: {e.Message}");
        await Console.Error.WriteLineAsync(e.ToString());
    }

    report.Paragraph($"_Scenario '{name}' took {clock.Elapsed.TotalMinutes:0.0} min._");
}

report.Paragraph($"Total time: {total.Elapsed.TotalMinutes:0.0} min ({(quick ? "quick" : "full")} run).");
var root = EnvironmentInfo.FindRepositoryRoot() ?? Directory.GetCurrentDirectory();
var output = Path.Combine(root, "benchmarks", "results", "latest.md");
await report.SaveAsync(output);
report.Progress($"results written to {output}");
return failed ? 1 : 0;
