using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>
/// A throwaway PgBouncer in front of a test database: its own ini and user list in a temporary
/// directory, a free loopback port, trust authentication towards the tests. Each alias is a
/// database entry with its own pool mode, all pointing at the same real database. PgBouncer refuses
/// to run as root, so under root it runs as the <c>postgres</c> OS user. Stopped (by the id of the
/// process started here) and removed on dispose.
/// </summary>
internal sealed class PgBouncer : IAsyncDisposable
{
    private const string ServiceUser = "postgres";
    private static readonly string[] KnownLocations = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"];

    private readonly string _directory;
    private readonly NpgsqlConnectionStringBuilder _target;
    private readonly Dictionary<string, (string Mode, int PoolSize)> _aliases;
    private readonly StringBuilder _output = new();
    private readonly List<(string Text, TaskCompletionSource Signal)> _waiters = [];
    private Process? _process;

    private PgBouncer(string directory, NpgsqlConnectionStringBuilder target, Dictionary<string, (string, int)> aliases)
    {
        _directory = directory;
        _target = target;
        _aliases = aliases;
    }

    public int Port { get; private set; }

    /// <summary>Whether the test run is a CI run (<c>CI=true</c>), where a missing PgBouncer is a failure, not a skip.</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? FindBinary() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator)
            .Where(d => d.Length > 0)
            .Select(d => Path.Combine(d, "pgbouncer"))
            .Concat(KnownLocations)
            .FirstOrDefault(File.Exists);

    /// <summary>Why PgBouncer tests cannot run here, or null when they can (or must: under CI they run and fail).</summary>
    public static string? SkipReason => FindBinary() is null && !IsCi
        ? "PgBouncer is not installed (looked on PATH and in /usr/sbin); 'apt-get install pgbouncer' provides it. Under CI (CI=true) these tests fail instead."
        : null;

    /// <summary>Starts PgBouncer in front of the database of <paramref name="targetConnectionString"/>.</summary>
    /// <param name="targetConnectionString">A superuser connection string to the real database.</param>
    /// <param name="aliases">Database names clients use, each with its pool mode and server pool size.</param>
    public static async Task<PgBouncer> StartAsync(string targetConnectionString, IReadOnlyDictionary<string, (string Mode, int PoolSize)> aliases)
    {
        var binary = FindBinary() ?? throw new InvalidOperationException(
            "PgBouncer is required but not installed (looked on PATH and in /usr/sbin); under CI (CI=true) its tests fail rather " +
            "than skip. Install it with 'apt-get install pgbouncer'; .ci/run does so when it is missing.");
        var directory = Path.Combine(Path.GetTempPath(), "pgevents-pgbouncer-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        var bouncer = new PgBouncer(directory, new NpgsqlConnectionStringBuilder(targetConnectionString), aliases.ToDictionary(a => a.Key, a => a.Value));
        try
        {
            // A port found free can be taken before PgBouncer binds it; try a few.
            for (var attempt = 1; ; attempt++)
            {
                bouncer.Port = FindFreePort();
                try
                {
                    await bouncer.StartProcessAsync(binary);
                    return bouncer;
                }
                catch (InvalidOperationException) when (attempt < 3)
                {
                    bouncer.StopProcess();
                }
            }
        }
        catch
        {
            await bouncer.DisposeAsync();
            throw;
        }
    }

    /// <summary>Connects to <paramref name="alias"/> through PgBouncer as the target's user.</summary>
    public string ConnectionString(string alias, string? applicationName = null) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Database = alias,
        Username = _target.Username,
        ApplicationName = applicationName,
    }.ConnectionString;

    /// <summary>Changes an alias's pool mode and has PgBouncer reload its configuration (SIGHUP), as an operator would.</summary>
    public async Task SetPoolModeAsync(string alias, string mode)
    {
        _aliases[alias] = (mode, _aliases[alias].PoolSize);
        await WriteConfigurationAsync();
        var reloaded = WaitForOutput("got SIGHUP");
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-HUP", _process!.Id.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false })!;
        await kill.WaitForExitAsync();
        kill.ExitCode.Should().Be(0, "PgBouncer must receive SIGHUP");

        // PgBouncer is single-threaded: it logs the signal and then reloads before it serves anyone else.
        await reloaded.WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async ValueTask DisposeAsync()
    {
        StopProcess();
        for (var attempt = 0; attempt < 5 && Directory.Exists(_directory); attempt++)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                await Task.Delay(100);
            }
        }
    }

    private async Task StartProcessAsync(string binary)
    {
        await WriteConfigurationAsync();
        var info = new ProcessStartInfo(binary, [Path.Combine(_directory, "pgbouncer.ini")])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (string.Equals(Environment.UserName, "root", StringComparison.Ordinal))
        {
            // Started directly as the service user (not through runuser), so the id is PgBouncer's own.
            info.UserName = ServiceUser;
        }

        _process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {binary}.");
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;

        // Ready when a query goes through it to the server.
        await Eventually.UntilAsync(PingAsync, error => error is null,
            error => $"PgBouncer should accept connections; the last attempt failed with {error?.Message}:{Environment.NewLine}{Output}");
    }

    /// <summary>A query through PgBouncer: null once it goes through, else why not yet.</summary>
    private async Task<Exception?> PingAsync()
    {
        if (_process!.HasExited)
        {
            throw new InvalidOperationException($"PgBouncer exited with code {_process.ExitCode} at start:{Environment.NewLine}{Output}");
        }

        try
        {
            await using var connection = new NpgsqlConnection(ConnectionString(_aliases.Keys.First()) + ";Pooling=false");
            await connection.OpenAsync();
            await using var ping = new NpgsqlCommand("SELECT 1", connection);
            await ping.ExecuteScalarAsync();
            return null;
        }
        catch (Exception e) when (e is NpgsqlException or IOException or SocketException)
        {
            return e;
        }
    }

    private string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    private async Task WriteConfigurationAsync()
    {
        // Server-side login: the target's user and, when it has one (a container), its password.
        var server = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"host={_target.Host} port={_target.Port} dbname={_target.Database}");
        if (!string.IsNullOrEmpty(_target.Password))
        {
            server.Append(CultureInfo.InvariantCulture, $" user={_target.Username} password={_target.Password}");
        }

        var ini = new StringBuilder("[databases]").AppendLine();
        foreach (var (alias, (mode, poolSize)) in _aliases)
        {
            ini.AppendLine(CultureInfo.InvariantCulture, $"{alias} = {server} pool_mode={mode} pool_size={poolSize}");
        }

        ini.AppendLine("[pgbouncer]")
            .AppendLine("listen_addr = 127.0.0.1")
            .AppendLine(CultureInfo.InvariantCulture, $"listen_port = {Port}")
            .AppendLine("unix_socket_dir =")
            .AppendLine("auth_type = trust")
            .AppendLine(CultureInfo.InvariantCulture, $"auth_file = {Path.Combine(_directory, "userlist.txt")}")
            .AppendLine("pool_mode = session")
            .AppendLine("max_client_conn = 500")
            .AppendLine("server_login_retry = 1");
        await File.WriteAllTextAsync(Path.Combine(_directory, "userlist.txt"), $"\"{_target.Username}\" \"\"{Environment.NewLine}");
        await File.WriteAllTextAsync(Path.Combine(_directory, "pgbouncer.ini"), ini.ToString());
    }

    private Task WaitForOutput(string text)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            _waiters.Add((text, signal));
        }

        return signal.Task;
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
            foreach (var waiter in _waiters.Where(w => line.Contains(w.Text, StringComparison.Ordinal)).ToList())
            {
                waiter.Signal.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    private void StopProcess()
    {
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        if (_process is { } process)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill();
                    process.WaitForExit();
                }
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            process.Dispose();
            _process = null;
        }
    }

    private void OnProcessExit(object? sender, EventArgs e) => StopProcess();

    private static int FindFreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// A fact that needs PgBouncer: skipped, with the reason, where it is not installed, except under CI
/// (<c>CI=true</c>), where it runs and fails, so a CI machine without PgBouncer cannot pass unnoticed.
/// </summary>
public sealed class PgBouncerFactAttribute : FactAttribute
{
    public PgBouncerFactAttribute()
    {
        Skip = PgBouncer.SkipReason;
    }
}
