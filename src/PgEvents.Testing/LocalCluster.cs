using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace PgEvents.Testing;

/// <summary>
/// A temporary PostgreSQL cluster in its own directory, started from local binaries on a free
/// loopback port. PostgreSQL refuses to run as root, so under root every server command runs as
/// the <c>postgres</c> OS user.
/// </summary>
internal sealed class LocalCluster
{
    private const string ServiceUser = "postgres";
    private const string OwnerFile = "owner.pid";
    private const string DirectoryPrefix = "pgevents-";

    private readonly string _binDirectory;
    private readonly string? _runAs;
    private readonly string _directory;
    private readonly string _dataDirectory;
    private bool _running;

    private LocalCluster(string binDirectory, string? runAs, string directory)
    {
        _binDirectory = binDirectory;
        _runAs = runAs;
        _directory = directory;
        _dataDirectory = Path.Combine(directory, "data");
    }

    public int Port { get; private set; }

    public string LogFile => Path.Combine(_directory, "server.log");

    public string ConnectionString => new Npgsql.NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = ServiceUser,
        Database = "postgres",
    }.ConnectionString;

    public static string? FindBinDirectory(string? configured)
    {
        if (configured is not null)
        {
            return File.Exists(Path.Combine(configured, "initdb")) ? configured : null;
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator))
        {
            if (directory.Length == 0)
            {
                continue;
            }

            var initdb = Path.Combine(directory, "initdb");
            if (File.Exists(initdb))
            {
                // Debian puts wrappers on PATH; pg_ctl must come from the same installation.
                var resolved = new FileInfo(initdb).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? initdb;
                var resolvedDirectory = Path.GetDirectoryName(resolved)!;
                if (File.Exists(Path.Combine(resolvedDirectory, "pg_ctl")))
                {
                    return resolvedDirectory;
                }

                if (File.Exists(Path.Combine(directory, "pg_ctl")))
                {
                    return directory;
                }
            }
        }

        const string debianRoot = "/usr/lib/postgresql";
        if (Directory.Exists(debianRoot))
        {
            return Directory.GetDirectories(debianRoot)
                .Select(d => (Directory: Path.Combine(d, "bin"), Version: double.TryParse(Path.GetFileName(d), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : 0))
                .Where(d => File.Exists(Path.Combine(d.Directory, "initdb")) && File.Exists(Path.Combine(d.Directory, "pg_ctl")))
                .OrderByDescending(d => d.Version)
                .Select(d => d.Directory)
                .FirstOrDefault();
        }

        return null;
    }

    public static async Task<LocalCluster> CreateAsync(string binDirectory, PostgresServerOptions options, CancellationToken cancellationToken)
    {
        var runAs = string.Equals(Environment.UserName, "root", StringComparison.Ordinal) ? ServiceUser : null;
        var directory = Path.Combine(Path.GetTempPath(), DirectoryPrefix + Guid.NewGuid().ToString("N")[..12]);
        if (runAs is null)
        {
            Directory.CreateDirectory(directory);
        }
        else
        {
            await ProcessRunner.RunAsync(runAs, "mkdir", ["-p", directory], cancellationToken).ConfigureAwait(false);
        }

        // Leave a mark of who owns this cluster, so a later run can remove it if we die abruptly.
        await File.WriteAllTextAsync(Path.Combine(directory, OwnerFile), Environment.ProcessId.ToString(CultureInfo.InvariantCulture), cancellationToken).ConfigureAwait(false);
        await SweepAbandonedAsync(binDirectory, runAs, directory, cancellationToken).ConfigureAwait(false);

        var cluster = new LocalCluster(binDirectory, runAs, directory);
        try
        {
            await cluster.InitializeAsync(options, cancellationToken).ConfigureAwait(false);
            await cluster.StartOnFreePortAsync(cancellationToken).ConfigureAwait(false);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task InitializeAsync(PostgresServerOptions options, CancellationToken cancellationToken)
    {
        await ProcessRunner.RunAsync(_runAs, Path.Combine(_binDirectory, "initdb"),
            ["-D", _dataDirectory, "-U", ServiceUser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            cancellationToken).ConfigureAwait(false);

        var settings = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["listen_addresses"] = "'127.0.0.1'",
            ["unix_socket_directories"] = "''",
            ["max_connections"] = "300",
            ["shared_buffers"] = "'256MB'",
            ["max_wal_size"] = "'4GB'",
            ["logging_collector"] = "off",
        };
        if (!options.Durable)
        {
            settings["fsync"] = "off";
            settings["synchronous_commit"] = "off";
            settings["full_page_writes"] = "off";
        }

        foreach (var (name, value) in options.Settings)
        {
            settings[name] = value;
        }

        var conf = new StringBuilder(Environment.NewLine + "# PgEvents.Testing" + Environment.NewLine);
        foreach (var (name, value) in settings)
        {
            conf.Append(CultureInfo.InvariantCulture, $"{name} = {value}{Environment.NewLine}");
        }

        // Root may append to the file postgres owns; ownership stays unchanged.
        await File.AppendAllTextAsync(Path.Combine(_dataDirectory, "postgresql.conf"), conf.ToString(), cancellationToken).ConfigureAwait(false);
    }

    private async Task StartOnFreePortAsync(CancellationToken cancellationToken)
    {
        // A port found free can be taken before the server binds it; try a few.
        for (var attempt = 1; ; attempt++)
        {
            Port = FindFreePort();
            try
            {
                await StartAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
            }
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await ProcessRunner.RunAsync(_runAs, Path.Combine(_binDirectory, "pg_ctl"),
            ["-D", _dataDirectory, "-l", LogFile, "-w", "-t", "60", "-o", "-p " + Port.ToString(CultureInfo.InvariantCulture), "start"],
            cancellationToken).ConfigureAwait(false);
        _running = true;
    }

    /// <summary>Stops the server; <paramref name="immediate"/> simulates a crash (no shutdown checkpoint).</summary>
    public async Task StopAsync(bool immediate, CancellationToken cancellationToken)
    {
        await ProcessRunner.RunAsync(_runAs, Path.Combine(_binDirectory, "pg_ctl"),
            ["-D", _dataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60", "stop"],
            cancellationToken).ConfigureAwait(false);
        _running = false;
    }

    public async ValueTask DisposeAsync()
    {
        if (_running)
        {
            try
            {
                await StopAsync(immediate: true, CancellationToken.None).ConfigureAwait(false);
            }
            catch (InvalidOperationException)
            {
                // Already gone; the directory is removed below either way.
            }
        }

        DeleteDirectory();
    }

    /// <summary>Synchronous last-chance cleanup for process exit, where nothing can be awaited.</summary>
    public void StopAtExit()
    {
        if (_running)
        {
            try
            {
                StopAsync(immediate: true, CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (InvalidOperationException)
            {
            }
        }

        DeleteDirectory();
    }

    private void DeleteDirectory() => TryDelete(_directory);

    private static void TryDelete(string directory)
    {
        // The server may still be closing files for a moment after pg_ctl returns.
        for (var attempt = 0; attempt < 5 && Directory.Exists(directory); attempt++)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Thread.Sleep(100);
            }
        }
    }

    /// <summary>
    /// Removes clusters whose owning process is gone (a test run that was killed never disposes):
    /// stops a server still running in them and deletes the directory.
    /// </summary>
    private static async Task SweepAbandonedAsync(string binDirectory, string? runAs, string ownDirectory, CancellationToken cancellationToken)
    {
        foreach (var directory in Directory.GetDirectories(Path.GetTempPath(), DirectoryPrefix + "*"))
        {
            if (directory == ownDirectory)
            {
                continue;
            }

            var ownerFile = Path.Combine(directory, OwnerFile);
            bool abandoned;
            if (File.Exists(ownerFile))
            {
                abandoned = !int.TryParse(await File.ReadAllTextAsync(ownerFile, cancellationToken).ConfigureAwait(false), out var owner) || !IsAlive(owner);
            }
            else
            {
                // Written before owner files existed, or by a run that died before writing one.
                abandoned = Directory.GetLastWriteTimeUtc(directory) < DateTime.UtcNow.AddHours(-1);
            }

            if (!abandoned)
            {
                continue;
            }

            var data = Path.Combine(directory, "data");
            if (File.Exists(Path.Combine(data, "postmaster.pid")))
            {
                try
                {
                    await ProcessRunner.RunAsync(runAs, Path.Combine(binDirectory, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], cancellationToken).ConfigureAwait(false);
                }
                catch (InvalidOperationException)
                {
                    // Not running any more (stale pid file): nothing to stop.
                }
            }

            TryDelete(directory);
        }
    }

    private static bool IsAlive(int processId)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static int FindFreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
