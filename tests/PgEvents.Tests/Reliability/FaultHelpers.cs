using Npgsql;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

internal static class FaultHelpers
{
    public static string WithApplicationName(string connectionString, string applicationName) =>
        new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = applicationName }.ConnectionString;

    /// <summary>
    /// Terminates every session of an application in the connection string's database, as a network
    /// cut or a DBA would. Other test classes run in parallel on other databases of the same server.
    /// </summary>
    public static async Task<long> TerminateAsync(string connectionString, string applicationName)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity " +
            "WHERE application_name = @app AND datname = current_database() AND pid <> pg_backend_pid()", connection);
        command.Parameters.AddWithValue("app", applicationName);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>
    /// Checks an at-least-once delivery sequence against the committed order: after dropping
    /// repeats, it must be exactly the committed ids, and a repeat may only go back to something
    /// already delivered (redelivery after a lost cursor), never jump ahead of a gap.
    /// </summary>
    public static void ShouldBeCompleteAndOrdered(IReadOnlyList<long> delivered, IReadOnlyList<long> committed)
    {
        var seen = new HashSet<long>();
        var firstDeliveries = new List<long>();
        foreach (var id in delivered)
        {
            if (seen.Add(id))
            {
                firstDeliveries.Add(id);
            }
        }

        firstDeliveries.Should().Equal(committed, "every committed event arrives, in commit order, none skipped");
    }

    public static IReadOnlyList<long> Ids(EventSink sink) => sink.Deliveries.Select(d => ((Item)d.Row!).Id).ToList();

    /// <summary>Waits, signalled by the handler, until the item with <paramref name="id"/> has been delivered (at least once).</summary>
    public static Task WaitForIdAsync(EventSink sink, long id) =>
        sink.WaitUntilAsync(deliveries => deliveries.Any(d => ((Item)d.Row!).Id == id), $"id {id} to be delivered", TimeSpan.FromSeconds(60));

    /// <summary>The backends holding a consumer's lease (its session advisory lock), with their application and state.</summary>
    public static async Task<List<(int Pid, string Application, string State)>> LeaseHoldersAsync(DatabaseFixture db, string schemaName, string consumer)
    {
        var key = SchemaSettings.DeriveKey("lease", schemaName + "\0" + consumer);
        await using var command = db.DataSource.CreateCommand(
            """
            SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.state, '')
              FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
               AND l.classid::bigint = @class AND l.objid::bigint = @key
            """);
        command.Parameters.AddWithValue("class", (long)(uint)SchemaSettings.AdvisoryLockClass);
        command.Parameters.AddWithValue("key", (long)(uint)key);
        await using var reader = await command.ExecuteReaderAsync();
        var holders = new List<(int, string, string)>();
        while (await reader.ReadAsync())
        {
            holders.Add((reader.GetInt32(0), reader.GetString(1), reader.GetString(2)));
        }

        return holders;
    }
}

/// <summary>Inserts rows one transaction at a time, remembering which commits succeeded.</summary>
internal sealed class SequentialWriter(string connectionString, string table)
{
    private readonly List<long> _committed = [];

    public IReadOnlyList<long> Committed
    {
        get
        {
            lock (_committed)
            {
                return _committed.ToList();
            }
        }
    }

    /// <summary>Writes ids from..to; with <paramref name="retry"/>, failed commits are retried until they succeed.</summary>
    public async Task WriteAsync(long from, long to, bool retry, CancellationToken cancellationToken = default)
    {
        var id = from;
        while (id <= to)
        {
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(cancellationToken);
                for (; id <= to; id++)
                {
                    await using var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES (@id, 'row') ON CONFLICT (id) DO NOTHING", connection);
                    insert.Parameters.AddWithValue("id", id);
                    await insert.ExecuteNonQueryAsync(cancellationToken);
                    lock (_committed)
                    {
                        _committed.Add(id);
                    }
                }
            }
            catch (Exception e) when (retry && e is NpgsqlException or InvalidOperationException or IOException)
            {
                // The server is away; whether the last insert committed is unknown, so it is
                // retried with ON CONFLICT DO NOTHING and counted only if it reports a row.
                NpgsqlConnection.ClearAllPools();
                await Task.Delay(50, cancellationToken);
                id = await ResolveAmbiguousAsync(id, cancellationToken);
            }
        }
    }

    private async Task<long> ResolveAmbiguousAsync(long id, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(cancellationToken);
                await using var check = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = @id)", connection);
                check.Parameters.AddWithValue("id", id);
                if ((bool)(await check.ExecuteScalarAsync(cancellationToken))!)
                {
                    lock (_committed)
                    {
                        _committed.Add(id);
                    }

                    return id + 1;
                }

                return id;
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException or IOException)
            {
                await Task.Delay(100, cancellationToken);
            }
        }
    }
}
