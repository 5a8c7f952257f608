using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// Peak working set of a consumer process while it drains large rows into a no-op handler: 300
/// rows of 1 MB (incompressible), with reads bounded by count only (the behaviour before
/// <see cref="PgEventsOptions.MaxBatchBytes"/>) and with the default byte bound, side by side.
/// Each drain runs in a child process of its own whose GC heap is capped (DOTNET_GCHeapHardLimit),
/// as a container's memory limit caps it: without a limit the GC collects large objects lazily on a
/// machine with plenty of memory, and the working set says more about the GC than about what the
/// consumer keeps alive. The peak is the child's Linux high-water mark (VmHWM).
/// </summary>
internal static class MemoryBenchmark
{
    private const int Rows = 300;
    private const int RowBytes = 1_000_000;

    public static async Task RunAsync(PostgresServer server, Report report)
    {
        report.Line("## 5. Memory while draining large rows");
        report.Line();
        report.Line($"{Rows} rows of {RowBytes:N0} bytes (random text, TOAST cannot compress it) drained into a no-op row handler by a " +
                    "consumer process whose GC heap is capped (DOTNET_GCHeapHardLimit, as a container's memory limit caps it); " +
                    "peak working set of that process (VmHWM).");
        report.Line();
        var rows = new List<string[]>();
        foreach (var heapMiB in new[] { 512, 128 })
        {
            foreach (var (label, maxBytes) in new[] { ("count only (BatchSize 500, no byte bound)", long.MaxValue), ("MaxBatchBytes 8 MiB (default)", new PgEventsOptions().MaxBatchBytes) })
            {
                var connectionString = await server.CreateDatabaseAsync("memory");
                await Designs.CreateAsync(connectionString, Design.PgEvents, CatchUpBenchmark.Table(0));
                await WriteLargeRowsAsync(connectionString);
                var (outcome, peak, seconds) = await RunChildAsync(connectionString, maxBytes, heapMiB);
                await server.DropDatabaseAsync(connectionString);
                rows.Add([$"{heapMiB} MiB", label, outcome, peak is { } bytes ? (bytes / (1024.0 * 1024)).ToString("N0", CultureInfo.InvariantCulture) : "-", seconds]);
                Console.WriteLine($"memory: heap {heapMiB} MiB, {label}: {outcome}, peak {peak / (1024 * 1024)} MiB, {seconds} s");
            }
        }

        report.Table(["GC heap limit", "reads bounded by", "outcome", "peak working set (MiB)", "drain seconds"], rows);
    }

    /// <summary>The child's side: drains the backlog and prints its peak working set and time.</summary>
    public static async Task<int> DrainAsync(string connectionString, long maxBytes)
    {
        var services = new ServiceCollection();
        var builder = services.AddPgEvents(o =>
        {
            o.ConnectionString = connectionString;
            o.ConsumerName = "memory";
            o.Retention.Age = null;
            o.MaxBatchBytes = maxBytes;
        });
        builder.AddHandler<BenchRow, CountingHandler>(CatchUpBenchmark.Table(0));
        var (seconds, delivered) = await ConsumerDrain.RunAsync(services, Rows);
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"DRAINED {delivered} {self.PeakWorkingSet64} {seconds:0.0}"));
        return delivered == Rows ? 0 : 1;
    }

    private static async Task<(string Outcome, long? PeakBytes, string Seconds)> RunChildAsync(string connectionString, long maxBytes, int heapMiB)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true };
        var entry = Environment.GetCommandLineArgs()[0];
        if (entry.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(entry);
        }

        start.ArgumentList.Add("--memory-drain");
        start.ArgumentList.Add(connectionString);
        start.ArgumentList.Add(maxBytes.ToString(CultureInfo.InvariantCulture));
        start.Environment["DOTNET_GCHeapHardLimit"] = "0x" + ((long)heapMiB << 20).ToString("X", CultureInfo.InvariantCulture);
        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync();
        var errors = child.StandardError.ReadToEndAsync();
        await child.WaitForExitAsync();
        var line = (await output).Split('\n').FirstOrDefault(l => l.StartsWith("DRAINED ", StringComparison.Ordinal));
        if (child.ExitCode == 0 && line?.Split(' ') is [_, _, var peak, var seconds])
        {
            return ("drained", long.Parse(peak, CultureInfo.InvariantCulture), seconds);
        }

        var error = (await errors) + (await output);
        var reason = error.Contains("memory", StringComparison.OrdinalIgnoreCase) ? "crashed: out of memory" : $"failed (exit {child.ExitCode})";
        return (reason, null, "-");
    }

    private static async Task WriteLargeRowsAsync(string connectionString)
    {
        // Server-side random text, so the benchmark process never holds the payloads itself.
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var insert = dataSource.CreateCommand(
            $"""
            INSERT INTO "{CatchUpBenchmark.Table(0)}"
            SELECT g, (SELECT string_agg(md5(random()::text || s.i), '') FROM generate_series(1, @bytes / 32) AS s(i)), 1
              FROM generate_series(1, @rows) g
            """);
        insert.Parameters.AddWithValue("bytes", RowBytes);
        insert.Parameters.AddWithValue("rows", Rows);
        insert.CommandTimeout = 0;
        await insert.ExecuteNonQueryAsync();
    }
}
