using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;
using PgEvents.Tests.Reliability;

namespace PgEvents.Tests.Batching;

/// <summary>
/// Applies a batch to a projection in the same database through <see cref="ChangeBatch.GetTransactionAsync"/>,
/// recording every change it applied, then fails the calls its <see cref="FlakySchedule"/> picks (after writing).
/// </summary>
public sealed class ProjectionBatchHandler(FlakySchedule schedule) : IBatchHandler
{
    public async Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        var transaction = await batch.GetTransactionAsync(cancellationToken);
        foreach (var change in batch)
        {
            var sql = change.Kind switch
            {
                ChangeKind.Insert => $"INSERT INTO {change.Table.Name}_projection (id, label) VALUES (@id, @label)",
                ChangeKind.Update => $"UPDATE {change.Table.Name}_projection SET label = @label WHERE id = @id",
                ChangeKind.Delete => $"DELETE FROM {change.Table.Name}_projection WHERE id = @id",
                _ => throw new InvalidOperationException($"unexpected {change.Kind}"),
            };
            var row = change.GetRow<BatchRow>()!;
            await using var apply = new NpgsqlCommand(sql + $"; INSERT INTO {change.Table.Name}_applied (position, event_id) VALUES (@position, @event_id)", transaction.Connection, transaction);
            apply.Parameters.AddWithValue("id", row.Id);
            apply.Parameters.AddWithValue("label", row.Label);
            apply.Parameters.AddWithValue("position", change.Position);
            apply.Parameters.AddWithValue("event_id", change.EventId);
            await apply.ExecuteNonQueryAsync(cancellationToken);
        }

        if (schedule.NextFails())
        {
            throw new InvalidOperationException("fails after writing, so the batch's writes must roll back");
        }
    }
}

/// <summary>
/// A projection applied through the batch's transaction commits together with the cursor: it is
/// applied exactly once, through handler failures, graceful stops mid-run and killed connections.
/// </summary>
public sealed class BatchTransactionTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Theory]
    [InlineData(BatchBoundary.Change)]
    [InlineData(BatchBoundary.Transaction)]
    public async Task A_projection_written_through_the_batch_transaction_is_applied_exactly_once_through_failures_stops_and_killed_connections(BatchBoundary boundary)
    {
        var name = "bt_" + boundary.ToString().ToLowerInvariant();
        var source = name + "_source";
        await db.ExecuteAsync(
            $"""
            CREATE TABLE {source} (id bigint PRIMARY KEY, label text NOT NULL);
            CREATE TABLE {source}_projection (id bigint PRIMARY KEY, label text NOT NULL);
            CREATE TABLE {source}_applied (position bigint NOT NULL, event_id bigint NOT NULL);
            """);
        await BatchTesting.TrackAheadAsync(db, name, source);
        var schedule = new FlakySchedule { Every = 3 };
        var application = "PgEvents:" + name;

        // Writers insert, update and delete in transactions of random sizes while the consumer is
        // stopped, killed and restarted under them.
        var random = new Random(boundary == BatchBoundary.Change ? 1 : 2);
        long nextId = 0;
        var live = new List<long>();
        var writing = Task.Run(async () =>
        {
            for (var t = 0; t < 150; t++)
            {
                var statements = new List<string>();
                for (var r = random.Next(1, 12); r > 0; r--)
                {
                    if (live.Count > 0 && random.Next(4) == 0)
                    {
                        statements.Add($"UPDATE {source} SET label = 'updated {t}' WHERE id = {live[random.Next(live.Count)]}");
                    }
                    else if (live.Count > 0 && random.Next(6) == 0)
                    {
                        var victim = live[random.Next(live.Count)];
                        live.Remove(victim);
                        statements.Add($"DELETE FROM {source} WHERE id = {victim}");
                    }
                    else
                    {
                        live.Add(++nextId);
                        statements.Add($"INSERT INTO {source} VALUES ({nextId}, 'row {nextId}')");
                    }
                }

                await BatchTesting.InTransactionAsync(db, [.. statements]);
            }
        });

        for (var run = 0; ; run++)
        {
            await using var host = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, application),
                b => b.AddBatchHandler<ProjectionBatchHandler>(source),
                o =>
                {
                    o.ConsumerName = name;
                    o.BatchSize = 7;
                    o.BatchBoundary = boundary;
                    o.ReconnectDelay = TimeSpan.FromMilliseconds(20);
                },
                services: s => s.AddSingleton(schedule)).StartAsync();
            if (writing.IsCompleted && run >= 4)
            {
                var total = (await BatchTesting.LogAsync(db, "log_" + name)).Count;
                await Eventually.UntilAsync(async () => await db.ScalarAsync<long>($"SELECT count(DISTINCT event_id) FROM {source}_applied") >= total,
                    "the projection should catch up", TimeSpan.FromSeconds(60));
                await host.StopAsync();
                break;
            }

            // Let it apply some more, then stop it in the middle (odd runs) or kill its connections
            // under it and then stop it (even runs).
            var applied = await AppliedAsync(source);
            await Eventually.UntilAsync(async () => await AppliedAsync(source) > applied || writing.IsCompleted, "the consumer should make progress");
            if (run % 2 == 0)
            {
                await FaultHelpers.TerminateAsync(db.ConnectionString, application);
                var afterKill = await AppliedAsync(source);
                await Eventually.UntilAsync(async () => await AppliedAsync(source) > afterKill || writing.IsCompleted, "the consumer should reconnect and go on");
            }

            await host.StopAsync();
        }

        await writing;
        schedule.Failures.Should().BePositive();
        var events = await BatchTesting.LogAsync(db, "log_" + name);
        var applications = await db.ScalarAsync<long>($"SELECT count(*) FROM log_{name}.events e JOIN {source}_applied a USING (event_id)");
        var distinct = await db.ScalarAsync<long>($"SELECT count(DISTINCT a.event_id) FROM log_{name}.events e JOIN {source}_applied a USING (event_id)");
        distinct.Should().Be(events.Count, "every change was applied");
        applications.Should().Be(events.Count, "no change was applied twice");
        (await db.ScalarAsync<long>(
            $"""
            SELECT count(*) FROM ((SELECT id, label FROM {source} EXCEPT SELECT id, label FROM {source}_projection)
                                  UNION ALL
                                  (SELECT id, label FROM {source}_projection EXCEPT SELECT id, label FROM {source})) AS diff
            """)).Should().Be(0, "the projection equals the source");
        (await db.ScalarAsync<long>($"SELECT count(*) FROM {source}")).Should().BePositive();
    }

    private Task<long> AppliedAsync(string source) =>
        db.ScalarAsync<long>($"SELECT count(*) FROM {source}_applied");
}
