using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents.Samples.Jobs;

/// <summary>
/// Runs queued jobs. Jobs are claimed with <c>FOR UPDATE SKIP LOCKED</c>, so several workers (or
/// several hosts) can share the queue without taking the same job twice.
/// </summary>
public sealed partial class JobWorker(JobDatabase database, ILogger<JobWorker> logger) : BackgroundService
{
    private long _done;

    public long Done => Interlocked.Read(ref _done);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        do
        {
            int claimed;
            do
            {
                claimed = await RunBatchAsync(stoppingToken);
            }
            while (claimed > 0);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task<int> RunBatchAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.DataSource.OpenConnectionAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var jobs = new List<(long Id, long OrderId, string Customer, decimal Total)>();
        await using (var claim = new NpgsqlCommand(
            "SELECT id, order_id, customer, total FROM jobs WHERE done_at IS NULL ORDER BY id LIMIT 20 FOR UPDATE SKIP LOCKED",
            connection, transaction))
        await using (var reader = await claim.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                jobs.Add((reader.GetInt64(0), reader.GetInt64(1), reader.GetString(2), reader.GetDecimal(3)));
            }
        }

        foreach (var job in jobs)
        {
            // The real work (an e-mail, a call to a payment provider) would go here.
            LogReceiptSent(logger, job.OrderId, job.Customer, job.Total);
            await using var finish = new NpgsqlCommand("UPDATE jobs SET done_at = clock_timestamp() WHERE id = @id", connection, transaction);
            finish.Parameters.AddWithValue("id", job.Id);
            await finish.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        Interlocked.Add(ref _done, jobs.Count);
        return jobs.Count;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Receipt for order {OrderId} sent to {Customer}: {Total}")]
    private static partial void LogReceiptSent(ILogger logger, long orderId, string customer, decimal total);
}
