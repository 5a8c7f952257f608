using System.Text.Json;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Adversarial;

/// <summary>Small helpers shared by the adversarial test classes: forced interleavings on real connections.</summary>
internal static class Adversary
{
    public static async Task ExecAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>The low 32 bits of the connection's current transaction id (assigning one if needed).</summary>
    public static async Task<uint> Xid32Async(NpgsqlConnection connection) =>
        (uint)(await ScalarAsync<long>(connection, "SELECT pg_current_xact_id()::text::bigint & 4294967295"));

    /// <summary>Polls a condition (a real signal from the server, never a sleep standing in for one).</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string because, double seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            DateTime.UtcNow.Should().BeBefore(deadline, because);
            await Task.Delay(5);
        }
    }

    public static Task WaitingOnLockAsync(DatabaseFixture db, int pid) =>
        UntilAsync(async () => await db.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = @pid AND wait_event_type = 'Lock'", ("pid", pid)) > 0,
            $"backend {pid} should reach its lock wait");

    /// <summary>Runs <paramref name="steps"/>; on failure rolls every blocker back so nothing hangs.</summary>
    public static async Task ReleasingOnFailureAsync(IEnumerable<NpgsqlConnection> blockers, IEnumerable<Task> pending, Func<Task> steps)
    {
        try
        {
            await steps();
        }
        catch
        {
            foreach (var blocker in blockers)
            {
                try
                {
                    await ExecAsync(blocker, "ROLLBACK");
                }
                catch (Exception)
                {
                    // best effort
                }
            }

            foreach (var task in pending)
            {
                await task.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            throw;
        }
    }

    public static IEnumerable<string> Labels(IEnumerable<CapturedEvent> events) =>
        events.Select(e =>
        {
            var json = e.RowJson ?? e.OldRowJson;
            if (json is null)
            {
                return $"{e.Kind}:{e.Table}";
            }

            var row = JsonDocument.Parse(json).RootElement;
            return $"{e.Kind}:{row.GetProperty("value").GetString()}";
        });
}
