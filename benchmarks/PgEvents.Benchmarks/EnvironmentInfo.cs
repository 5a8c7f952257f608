using System.Diagnostics;
using System.Runtime.InteropServices;
using Npgsql;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// What the figures depend on: the machine, the server settings, the disk's fsync speed, the code
/// measured (another engineer may be changing src/ during a run) and how busy the machine was.
/// </summary>
internal static class EnvironmentInfo
{
    private static readonly string[] ServerSettings =
    [
        "server_version", "fsync", "synchronous_commit", "shared_buffers", "wal_sync_method",
        "full_page_writes", "wal_level", "max_wal_size", "checkpoint_timeout", "max_connections",
    ];

    public static async Task ReportAsync(MarkdownReport report, PostgresServer server, BenchmarkProfile profile)
    {
        var settings = new List<IReadOnlyList<string>>();
        await using (var connection = new NpgsqlConnection(server.ConnectionString))
        {
            await connection.OpenAsync();
            foreach (var setting in ServerSettings)
            {
                // SHOW takes no parameters; the names come from the constant list above.
                await using var show = new NpgsqlCommand("SHOW " + setting, connection);
                settings.Add([setting, (string)(await show.ExecuteScalarAsync())!]);
            }
        }

        var (fsyncPerSecond, fsyncMedianMicroseconds) = ProbeFsync(profile.Quick ? TimeSpan.FromSeconds(0.5) : TimeSpan.FromSeconds(2));
        report.Heading("## Environment");
        report.Table(["", ""],
        [
            ["machine", $"{Environment.ProcessorCount} cores ({CpuModel()}), {Fmt.Bytes(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes)} RAM, {RuntimeInformation.OSDescription}"],
            [".NET", RuntimeInformation.FrameworkDescription],
            ["server", $"{server.Kind} (PgEvents.Testing, Durable = true), same machine as the load driver"],
            .. settings,
            ["fsync probe", $"{Fmt.N0(fsyncPerSecond)} fsyncs/s of an 8 KiB write (median {Fmt.N0(fsyncMedianMicroseconds)} µs), same filesystem as the cluster"],
            ["code measured", GitState()],
            ["at start", LoadNote(server)],
        ]);
    }

    /// <summary>1-minute load average and other PostgreSQL servers running: tells whether someone else was busy.</summary>
    public static string LoadNote(PostgresServer server)
    {
        var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
        return $"load average {load}, other PostgreSQL servers running: {OtherServers(server)}";
    }

    private static int OtherServers(PostgresServer server)
    {
        if (!Directory.Exists("/proc") || server.LogFile is null)
        {
            return 0;
        }

        var ownData = Path.Combine(Path.GetDirectoryName(server.LogFile)!, "data");
        var count = 0;
        foreach (var process in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var arguments = File.ReadAllText(Path.Combine(process, "cmdline")).Split('\0');
                var dataIndex = Array.IndexOf(arguments, "-D");
                if (arguments[0].EndsWith("/postgres", StringComparison.Ordinal) && dataIndex > 0 && dataIndex + 1 < arguments.Length
                    && arguments[dataIndex + 1] != ownData)
                {
                    count++;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The process ended while we looked.
            }
        }

        return count;
    }

    /// <summary>
    /// Every durable commit waits for one WAL flush, so this bounds single-writer transactions/s.
    /// Measured with the same kind of write PostgreSQL does (8 KiB, then fsync).
    /// </summary>
    private static (double PerSecond, double MedianMicroseconds) ProbeFsync(TimeSpan duration)
    {
        var path = Path.Combine(Path.GetTempPath(), $"pgevents-bench-fsync-{Environment.ProcessId}.tmp");
        var block = new byte[8192];
        var samples = new List<double>();
        try
        {
            using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1);
            var total = Stopwatch.StartNew();
            while (total.Elapsed < duration)
            {
                var one = Stopwatch.GetTimestamp();
                file.Position = 0;
                file.Write(block);
                file.Flush(flushToDisk: true);
                samples.Add(Stopwatch.GetElapsedTime(one).TotalMicroseconds);
            }

            return (samples.Count / total.Elapsed.TotalSeconds, Percentiles.Median(samples));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string CpuModel()
    {
        if (!File.Exists("/proc/cpuinfo"))
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }

        var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
    }

    private static string GitState()
    {
        var root = FindRepositoryRoot();
        if (root is null)
        {
            return "unknown (not run from a checkout)";
        }

        var commit = RunGit(root, "rev-parse", "--short", "HEAD");
        var dirty = RunGit(root, "status", "--porcelain", "--", "src", "sql");
        if (commit is null)
        {
            return "unknown (git not available)";
        }

        var changed = dirty?.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        return changed.Length == 0
            ? $"commit {commit}, src/ and sql/ unmodified"
            : $"commit {commit} plus uncommitted changes in {string.Join(", ", changed.Select(c => c[(c.IndexOf(' ', StringComparison.Ordinal) + 1)..].Trim()))}";
    }

    private static string? RunGit(string directory, params string[] arguments)
    {
        try
        {
            var start = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory };
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0 ? output.Trim() : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    /// <summary>The checkout holding this program: the first ancestor with PgEvents.sln.</summary>
    public static string? FindRepositoryRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "PgEvents.sln")))
                {
                    return directory.FullName;
                }
            }
        }

        return null;
    }
}
