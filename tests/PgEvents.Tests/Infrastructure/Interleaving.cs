using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>Driving several connections step by step: waiting for server-side signals (through <see cref="Eventually"/>), and never hanging on a failed step.</summary>
internal static class Interleaving
{
    /// <summary>Waits until the backend waits on a heavyweight lock.</summary>
    public static Task WaitingOnLockAsync(DatabaseFixture db, int pid) =>
        Eventually.UntilAsync(async () => await db.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = @pid AND wait_event_type = 'Lock'", ("pid", pid)) > 0,
            $"backend {pid} should reach its lock wait");

    /// <summary>Waits until a session of the application waits on a heavyweight lock.</summary>
    public static Task WaitingOnLockAsync(DatabaseFixture db, string applicationName) =>
        Eventually.UntilAsync(async () => await db.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = @app AND wait_event_type = 'Lock'", ("app", applicationName)) > 0,
            $"a session of {applicationName} should reach its lock wait");

    /// <summary>
    /// Runs <paramref name="steps"/> while <paramref name="blockers"/> hold transactions that
    /// <paramref name="pending"/> commits wait for; if a step fails, every blocker rolls back so the
    /// commits and the test end instead of hanging on connection disposal.
    /// </summary>
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
                    await using var rollback = new NpgsqlCommand("ROLLBACK", blocker);
                    await rollback.ExecuteNonQueryAsync();
                }
                catch (Exception)
                {
                    // Best effort: the step's own failure is what the test reports.
                }
            }

            foreach (var task in pending)
            {
                await task.ContinueWith(_ => { }, TaskScheduler.Default);
            }

            throw;
        }
    }
}
