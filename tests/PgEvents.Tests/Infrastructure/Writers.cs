using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>Concurrent writers, each on a session of its own with its own seeded random, repeating a step until stopped.</summary>
public static class Writers
{
    public static Task RunUntilStoppedAsync(string connectionString, int writers, Func<NpgsqlConnection, Random, Task> step, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var random = new Random(w);
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync();
            while (!stop.IsCancellationRequested)
            {
                await step(connection, random);
            }
        })));
}
