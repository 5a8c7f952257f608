using System.Collections.Concurrent;
using System.Text.Json;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// Many writers commit, roll back and fail at commit time at random while a reader consumes
/// concurrently; the delivered sequence is then checked against what really committed. Writers
/// also force constraints immediate, roll back savepoints, pause in a deferred trigger after taking
/// their position, and make each other's deferred foreign key checks wait on a row lock, while two
/// long transactions (one with a tracked write) stay open for the whole run.
/// </summary>
public sealed class CommitOrderingStressTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private const int Writers = 8;
    private const int TransactionsPerWriter = 150;
    private const int SharedRows = 12;

    private sealed record WriterTransaction(string Name, List<string> Expected, int CommitsCompletedBeforeLastWrite);

    [Fact]
    public async Task Random_concurrent_commits_rollbacks_and_commit_failures_are_delivered_exactly_as_committed_in_causal_order()
    {
        var schema = await OrderingTable.CreateAsync(db);
        await db.ExecuteAsync($"INSERT INTO items SELECT g, 'seed' FROM generate_series(1, {SharedRows}) g; INSERT INTO parents VALUES (1)");

        // A partitioned table with a citext and a json column: rows move between partitions and
        // change in ways their types call equal; a replica built from the log must match it.
        await db.ExecuteAsync(
            """
            CREATE EXTENSION IF NOT EXISTS citext;
            CREATE TABLE accounts (id int, region text, email citext, doc json, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu');
            CREATE TABLE accounts_us PARTITION OF accounts FOR VALUES IN ('us');
            CREATE TABLE accounts_asia PARTITION OF accounts FOR VALUES IN ('asia');
            """);
        await schema.TrackTableAsync(new TableName("public", "accounts"));
        var drain = new LogDrain(db.DataSource, schema, batchSize: 97);
        await drain.DrainAsync();

        // Open for the whole run: neither has reached its commit, so neither may delay anybody.
        await using var idleUntracked = await db.DataSource.OpenConnectionAsync();
        await ExecuteAsync(idleUntracked, "BEGIN; INSERT INTO parents VALUES (-1)");
        await using var idleTracked = await db.DataSource.OpenConnectionAsync();
        await ExecuteAsync(idleTracked, "BEGIN; INSERT INTO items VALUES (-1, 'idle-tracked')");

        var commitOrder = new List<WriterTransaction>();
        var outcomes = new ConcurrentDictionary<string, int>();
        var nextId = 1000;
        using var writersDone = new CancellationTokenSource();

        async Task WriteAsync(int writer)
        {
            var random = new Random(writer * 7919);
            await using var connection = await db.DataSource.OpenConnectionAsync();
            for (var t = 0; t < TransactionsPerWriter; t++)
            {
                var name = $"w{writer}t{t}";
                var expected = new List<string>();
                var completedBefore = 0;

                await using var transaction = await connection.BeginTransactionAsync();
                var outcome = random.Next(100) switch { < 70 => "commit", < 85 => "rollback", _ => "fail-at-commit" };
                try
                {
                    var inserted = new List<(int Id, string Tag)>();
                    var statements = random.Next(1, 5);
                    for (var s = 0; s < statements; s++)
                    {
                        var tag = $"{name}s{s}";
                        int completedBeforeStatement;
                        lock (commitOrder)
                        {
                            completedBeforeStatement = commitOrder.Count;
                        }

                        var savepoint = random.Next(100) < 15;
                        var (expectedBefore, insertedBefore) = (expected.Count, inserted.ToList());
                        if (savepoint)
                        {
                            await ExecuteAsync(connection, "SAVEPOINT sp");
                        }

                        if (random.Next(100) < 5)
                        {
                            // Fires the position trigger now; a later write must take a new position.
                            await ExecuteAsync(connection, "SET CONSTRAINTS ALL IMMEDIATE");
                        }

                        var operation = random.Next(10);
                        if (operation is >= 7 and < 9 && inserted.Count == 0)
                        {
                            operation = 0;
                        }

                        switch (operation)
                        {
                            case < 4:
                                var id = Interlocked.Increment(ref nextId);
                                await ExecuteAsync(connection, "INSERT INTO items VALUES (@id, @tag)", ("id", id), ("tag", tag));
                                inserted.Add((id, tag));
                                expected.Add("Insert:" + tag);
                                break;
                            case < 7:
                                await ExecuteAsync(connection, "UPDATE items SET value = @tag WHERE id = @id",
                                    ("id", random.Next(1, SharedRows + 1)), ("tag", tag));
                                expected.Add("Update:" + tag);
                                break;
                            case < 9:
                                var victim = inserted[^1];
                                inserted.RemoveAt(inserted.Count - 1);
                                await ExecuteAsync(connection, "DELETE FROM items WHERE id = @id", ("id", victim.Id));
                                expected.Add("Delete:" + victim.Tag);
                                break;
                            default:
                                // Holds the parent row for the rest of this transaction, so other
                                // writers' deferred foreign key checks wait after their position.
                                await ExecuteAsync(connection, "SELECT 1 FROM parents WHERE id = 1 FOR UPDATE");
                                break;
                        }

                        if (random.Next(100) < 10)
                        {
                            // A valid child: its deferred foreign key check runs after the position.
                            await ExecuteAsync(connection, "INSERT INTO children VALUES (@id, 1)", ("id", Interlocked.Increment(ref nextId)));
                        }

                        var rolledBack = false;
                        if (savepoint)
                        {
                            rolledBack = random.Next(2) == 0;
                            if (rolledBack)
                            {
                                await ExecuteAsync(connection, "ROLLBACK TO SAVEPOINT sp");
                                expected.RemoveRange(expectedBefore, expected.Count - expectedBefore);
                                inserted = insertedBefore;
                            }
                            else
                            {
                                await ExecuteAsync(connection, "RELEASE SAVEPOINT sp");
                            }
                        }

                        if (!rolledBack && expected.Count > expectedBefore)
                        {
                            // The last item write that stays: what committed before it must come first.
                            completedBefore = completedBeforeStatement;
                        }

                        // Let other writers interleave between statements of one transaction.
                        await Task.Yield();
                    }

                    if (random.Next(100) < 40)
                    {
                        await ChangeAccountAsync(connection, random);
                    }

                    if (random.Next(100) < 10)
                    {
                        await ExecuteAsync(connection, "INSERT INTO gate (action) VALUES ('pause')");
                    }

                    if (outcome == "rollback")
                    {
                        await transaction.RollbackAsync();
                    }
                    else
                    {
                        if (outcome == "fail-at-commit")
                        {
                            await ExecuteAsync(connection, "INSERT INTO children VALUES (@id, -1)", ("id", Interlocked.Increment(ref nextId)));
                        }

                        await transaction.CommitAsync();
                        outcome.Should().Be("commit", "a violated deferred foreign key must fail the commit");
                        if (expected.Count > 0)
                        {
                            // (One whose item writes all rolled back to a savepoint has nothing to deliver.)
                            lock (commitOrder)
                            {
                                commitOrder.Add(new WriterTransaction(name, expected, completedBefore));
                            }
                        }
                    }
                }
                catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.ForeignKeyViolation or PostgresErrorCodes.DeadlockDetected
                                                  or PostgresErrorCodes.InFailedSqlTransaction or PostgresErrorCodes.UniqueViolation
                                                  or PostgresErrorCodes.SerializationFailure)
                {
                    outcome = e.SqlState switch
                    {
                        PostgresErrorCodes.DeadlockDetected => "deadlock",
                        // Two writers racing on one row: a duplicate move, or a row another writer just moved.
                        PostgresErrorCodes.UniqueViolation or PostgresErrorCodes.SerializationFailure => "conflict",
                        _ => outcome,
                    };
                }

                outcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
            }
        }

        async Task ReadConcurrentlyAsync()
        {
            while (!writersDone.IsCancellationRequested)
            {
                var batch = await drain.ReadOnceAsync();
                if (batch.Events.Count == 0)
                {
                    await Task.Delay(1);
                }
            }
        }

        var reader = Task.Run(ReadConcurrentlyAsync);
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(w => Task.Run(() => WriteAsync(w))));
        await writersDone.CancelAsync();
        await reader;

        // Drained while both long transactions are still open: they hold nobody back.
        await drain.DrainAsync();
        lock (commitOrder)
        {
            commitOrder.Add(new WriterTransaction("idle-tracked", ["Insert:idle-tracked"], 0));
        }

        await ExecuteAsync(idleTracked, "COMMIT");
        await ExecuteAsync(idleUntracked, "ROLLBACK");
        await drain.DrainAsync();

        var accounts = new ReplicaModel(new TableName("public", "accounts"), ["id", "region"], ["id", "region", "email", "doc"]);
        accounts.ApplyAll(drain.Delivered);
        await accounts.ShouldEqualSourceAsync(db, "the partitioned table's replica, built from the log, must equal it");
        drain.Delivered.Where(e => e.Table.StartsWith("accounts_", StringComparison.Ordinal)).Should().BeEmpty("partitions are logged as the tracked table");

        outcomes.GetValueOrDefault("commit").Should().BeGreaterThan(0);
        outcomes.GetValueOrDefault("rollback").Should().BeGreaterThan(0);
        outcomes.GetValueOrDefault("fail-at-commit").Should().BeGreaterThan(0, "commit-time failures must leave holes to resolve");

        var delivered = drain.Delivered
            .Where(e => e.Table == "items")
            .Select(e => (e.Position, Text: e.Kind + ":" + JsonDocument.Parse(e.RowJson!).RootElement.GetProperty("value").GetString()))
            .Where(e => !e.Text.EndsWith(":seed", StringComparison.Ordinal))
            .ToList();

        // Nothing missing, nothing extra, nothing twice; each transaction contiguous and in order.
        var deliveredByTransaction = delivered
            .GroupBy(e => e.Text.Split(':')[1].Split('s')[0])
            .ToDictionary(g => g.Key, g => g.ToList());
        deliveredByTransaction.Keys.Should().BeEquivalentTo(commitOrder.Select(c => c.Name));
        foreach (var committed in commitOrder)
        {
            var events = deliveredByTransaction[committed.Name];
            events.Select(e => e.Text).Should().Equal(committed.Expected, $"{committed.Name} must be delivered whole and in statement order");
            events.Select(e => e.Position).Distinct().Should().ContainSingle();
            var first = delivered.IndexOf(events[0]);
            delivered.GetRange(first, events.Count).Should().Equal(events, $"{committed.Name} must be contiguous");
        }

        // Causality: whatever had committed before a transaction's last write comes before it.
        var positionOf = commitOrder.ToDictionary(c => c.Name, c => deliveredByTransaction[c.Name][0].Position);
        var maxPositionOfFirst = new long[commitOrder.Count + 1];
        for (var i = 0; i < commitOrder.Count; i++)
        {
            maxPositionOfFirst[i + 1] = Math.Max(maxPositionOfFirst[i], positionOf[commitOrder[i].Name]);
        }

        foreach (var committed in commitOrder)
        {
            positionOf[committed.Name].Should().BeGreaterThan(maxPositionOfFirst[committed.CommitsCompletedBeforeLastWrite],
                $"{committed.Name} wrote last after {committed.CommitsCompletedBeforeLastWrite} transactions had committed");
        }
    }

    /// <summary>One random change of the partitioned table: insert, move, case-only email change, json change.</summary>
    private static Task ChangeAccountAsync(NpgsqlConnection connection, Random random)
    {
        var id = random.Next(1, 40);
        var region = new[] { "eu", "us", "asia" }[random.Next(3)];
        return random.Next(4) switch
        {
            0 => ExecuteAsync(connection,
                "INSERT INTO accounts VALUES (@id, @region, @email, @doc::json) ON CONFLICT DO NOTHING",
                ("id", id), ("region", region), ("email", $"User{id}@Example.com"), ("doc", $$"""{"v": {{random.Next(3)}}}""")),
            1 => ExecuteAsync(connection, "UPDATE accounts SET region = @region WHERE id = @id AND region <> @region " +
                "AND NOT EXISTS (SELECT 1 FROM accounts WHERE id = @id AND region = @region)", ("id", id), ("region", region)),
            2 => ExecuteAsync(connection, "UPDATE accounts SET email = CASE WHEN email::text = lower(email::text) THEN upper(email::text) ELSE lower(email::text) END WHERE id = @id",
                ("id", id)),
            _ => ExecuteAsync(connection, "UPDATE accounts SET doc = @doc::json WHERE id = @id", ("id", id), ("doc", $$"""{"v": {{random.Next(3)}}, "w": 1}""")),
        };
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, params (string Name, object Value)[] parameters)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        await command.ExecuteNonQueryAsync();
    }
}
