using System.Diagnostics;
using System.Threading.Channels;
using Npgsql;

namespace PgEvents.Benchmarks;

/// <summary>What a paced run achieved.</summary>
/// <param name="Sent">INSERTs committed.</param>
/// <param name="Dropped">Tokens issued that no writer could take before the end: the rate was not sustained.</param>
/// <param name="Duration">The pacing window.</param>
internal sealed record PacedResult(long Sent, long Dropped, TimeSpan Duration)
{
    public double Achieved => Sent / Duration.TotalSeconds;
}

/// <summary>
/// Single-row autocommit INSERTs at a steady rate: a token bucket refilled on a 1 ms timer feeds
/// several connections. The clock of each event starts just before its INSERT is sent (the value is
/// written into the row), so a writer that falls behind shows as a lower achieved rate, not as latency.
/// </summary>
internal static class PacedWriter
{
    public static async Task<PacedResult> RunAsync(
        string connectionString, int rate, int writers, TimeSpan duration, long firstId, string payload, CancellationToken cancellationToken = default)
    {
        var tokens = Channel.CreateUnbounded<long>(new UnboundedChannelOptions { SingleWriter = true });
        var nextId = firstId - 1;
        var sent = 0L;
        var clock = new Stopwatch();

        // Connections are opened and statements prepared before the clock starts.
        var connections = new List<(NpgsqlConnection Connection, NpgsqlCommand Insert)>();
        try
        {
            for (var w = 0; w < writers; w++)
            {
                var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(cancellationToken);
                var insert = new NpgsqlCommand($"INSERT INTO {Designs.Quote(Designs.Table)} (id, payload, started) VALUES ($1, $2, $3)", connection);
                insert.Parameters.Add(new NpgsqlParameter<long>());
                insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload });
                insert.Parameters.Add(new NpgsqlParameter<long>());
                await insert.PrepareAsync(cancellationToken);
                connections.Add((connection, insert));
            }

            async Task WriteAsync(NpgsqlCommand insert)
            {
                var id = (NpgsqlParameter<long>)insert.Parameters[0];
                var started = (NpgsqlParameter<long>)insert.Parameters[2];
                await foreach (var _ in tokens.Reader.ReadAllAsync(cancellationToken))
                {
                    if (clock.Elapsed >= duration)
                    {
                        return;
                    }

                    id.TypedValue = Interlocked.Increment(ref nextId);
                    started.TypedValue = Stopwatch.GetTimestamp();
                    await insert.ExecuteNonQueryAsync(cancellationToken);
                    Interlocked.Increment(ref sent);
                }
            }

            clock.Start();
            var writing = connections.Select(c => Task.Run(() => WriteAsync(c.Insert), cancellationToken)).ToArray();
            var issued = 0L;
            using (var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(1)))
            {
                while (clock.Elapsed < duration)
                {
                    var due = Math.Min((long)(clock.Elapsed.TotalSeconds * rate) + 1, (long)(duration.TotalSeconds * rate));
                    for (; issued < due; issued++)
                    {
                        tokens.Writer.TryWrite(issued);
                    }

                    await timer.WaitForNextTickAsync(cancellationToken);
                }
            }

            tokens.Writer.Complete();
            await Task.WhenAll(writing);
            return new PacedResult(Interlocked.Read(ref sent), issued - Interlocked.Read(ref sent), duration);
        }
        finally
        {
            foreach (var (connection, insert) in connections)
            {
                await insert.DisposeAsync();
                await connection.DisposeAsync();
            }
        }
    }
}
