using System.Collections.Concurrent;
using System.Text.Json;
using Npgsql;
using PgEvents.Tests.Infrastructure;
using static PgEvents.Tests.Adversarial.Adversary;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Many writers mixing deferred and IMMEDIATE constraints, savepoints rolled back and released,
/// PL/pgSQL exception blocks, commits refused by a deferred trigger after the position, and plain
/// rollbacks, with a reader draining concurrently. Every committed change is delivered exactly once,
/// nothing rolled back is delivered, and a causal chain (a shared counter row every transaction
/// increments) is delivered in increasing order.
/// </summary>
public sealed class RandomizedConcurrencyTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("random", async () =>
    {
        var schema = await OrderingTable.CreateAsync(db);
        await db.ExecuteAsync(
            """
            CREATE TABLE counter (id int PRIMARY KEY, n int NOT NULL);
            INSERT INTO counter VALUES (0, 0);
            CREATE FUNCTION write_and_fail(p_id int) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                BEGIN
                    INSERT INTO items VALUES (p_id, 'undone');
                    RAISE EXCEPTION 'undo';
                EXCEPTION WHEN raise_exception THEN
                    NULL;
                END;
            END $$;
            """);
        await schema.TrackTableAsync(new TableName("public", "counter"));
        return schema;
    });

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Concurrent_writers_with_savepoints_immediate_constraints_and_failures_are_delivered_exactly_and_in_causal_order()
    {
        const int writers = 8;
        const int transactionsPerWriter = 60;
        var committedItems = new ConcurrentBag<int>();
        var committedCounts = new ConcurrentBag<int>();
        var unexpected = new ConcurrentBag<string>();
        var drain = new LogDrain(db.DataSource, _schema, batchSize: 50);
        using var stop = new CancellationTokenSource();

        var reading = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var batch = await drain.ReadOnceAsync();
                if (batch.Events.Count == 0)
                {
                    if (batch.WaitingOn is not null)
                    {
                        await drain.WaitForPendingHoleAsync(TimeSpan.FromMilliseconds(100));
                    }
                    else
                    {
                        await Task.Delay(2);
                    }
                }
            }
        });

        var writing = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            var random = new Random(1000 + w);
            await using var connection = await db.DataSource.OpenConnectionAsync();
            for (var i = 0; i < transactionsPerWriter; i++)
            {
                var baseId = ((w * 1000) + i) * 10;
                var kept = new List<int>();
                int? count = null;
                var outcome = random.Next(10);
                try
                {
                    await ExecAsync(connection, "BEGIN");
                    if (random.Next(3) == 0)
                    {
                        await ExecAsync(connection, "SET CONSTRAINTS ALL IMMEDIATE");
                    }

                    await ExecAsync(connection, $"INSERT INTO items VALUES ({baseId}, 'w')");
                    kept.Add(baseId);
                    switch (random.Next(4))
                    {
                        case 0:
                            await ExecAsync(connection, $"SAVEPOINT s; SET CONSTRAINTS ALL IMMEDIATE; INSERT INTO items VALUES ({baseId + 1}, 'rolled back'); ROLLBACK TO s");
                            break;
                        case 1:
                            await ExecAsync(connection, $"SAVEPOINT s; INSERT INTO items VALUES ({baseId + 2}, 'released'); RELEASE s");
                            kept.Add(baseId + 2);
                            break;
                        case 2:
                            await ExecAsync(connection, $"SELECT write_and_fail({baseId + 3})");
                            break;
                    }

                    if (random.Next(10) < 7)
                    {
                        count = await ScalarAsync<int>(connection, "UPDATE counter SET n = n + 1 WHERE id = 0 RETURNING n");
                    }

                    if (random.Next(2) == 0)
                    {
                        await ExecAsync(connection, "SET CONSTRAINTS ALL DEFERRED");
                    }

                    if (outcome == 0)
                    {
                        await ExecAsync(connection, "INSERT INTO gate (action) VALUES ('fail')");
                    }

                    if (outcome == 1)
                    {
                        await ExecAsync(connection, "ROLLBACK");
                        continue;
                    }

                    await ExecAsync(connection, "COMMIT");
                    kept.ForEach(committedItems.Add);
                    if (count is { } n)
                    {
                        committedCounts.Add(n);
                    }
                }
                catch (PostgresException e)
                {
                    // outcome 0 is refused by the gate (at commit, after its position was taken, or at
                    // once when constraints are immediate): nothing of it may be delivered. Anything
                    // else is an application statement failed by the capture or the reader.
                    if (outcome != 0)
                    {
                        unexpected.Add($"{e.SqlState}: {e.MessageText}");
                    }

                    await ExecAsync(connection, "ROLLBACK");
                }
            }
        })).ToList();

        await Task.WhenAll(writing);
        await stop.CancelAsync();
        await reading;
        await drain.DrainAsync();
        var delivered = drain.Delivered.ToList();

        var items = delivered.Where(e => e.Table == "items").Select(e => JsonDocument.Parse(e.RowJson!).RootElement.GetProperty("id").GetInt32()).ToList();
        items.Should().OnlyHaveUniqueItems().And.BeEquivalentTo(committedItems, "exactly the committed inserts are delivered");

        var counts = delivered.Where(e => e.Table == "counter").Select(e => JsonDocument.Parse(e.RowJson!).RootElement.GetProperty("n").GetInt32()).ToList();
        counts.Should().BeInAscendingOrder("each increment read the previous committed one").And.BeEquivalentTo(committedCounts);
        unexpected.Should().BeEmpty("only the transactions the test made fail may fail");
    }
}
