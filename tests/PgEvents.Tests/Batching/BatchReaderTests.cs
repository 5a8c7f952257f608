using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Batching;

/// <summary>
/// The reader under count and byte limits, with and without whole transactions, against position
/// holes (a transaction that took its position but commits late, or never): nothing is skipped,
/// nothing reordered, no read exceeds its byte bound unless it holds a single event (or a single
/// transaction), and whole-transaction reads never end inside a transaction.
/// </summary>
public sealed class BatchReaderTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;
    private int _nextId;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("ordering", () => OrderingTable.CreateAsync(db));

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>Ids unique across the tests of the class, which share the items table.</summary>
    private int NextIds(int count) => Interlocked.Add(ref _nextId, count) - count + 1 + (100_000 * TestSlot);

    private static int _slots;

    private int TestSlot { get; } = Interlocked.Increment(ref _slots);

    private sealed class LimitedDrain(NpgsqlDataSource dataSource, PgEventsSchema schema)
    {
        private readonly ChangeLogReader _reader = new(schema.Settings, "test-reader");

        public LogPosition Position { get; private set; }

        public List<ChangeLogBatch> Batches { get; } = [];

        public List<CapturedEvent> Delivered => Batches.SelectMany(b => b.Events).ToList();

        public async Task<ChangeLogBatch> ReadOnceAsync(ReadLimits limits)
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            return await ReadAsync(connection, limits);
        }

        private async Task<ChangeLogBatch> ReadAsync(NpgsqlConnection connection, ReadLimits limits)
        {
            var batch = await _reader.ReadAsync(connection, Position, limits, CancellationToken.None);
            foreach (var captured in batch.Events)
            {
                captured.LogPosition.CompareTo(Position).Should().BePositive("the reader must never go backwards");
                Position = captured.LogPosition;
            }

            if (batch.Events.Count > 0)
            {
                Batches.Add(batch);
            }

            return batch;
        }

        /// <summary>Reads until nothing is deliverable and no hole is pending; used once every writer has finished.</summary>
        public async Task DrainAsync(Func<ReadLimits> limits)
        {
            await using var connection = await dataSource.OpenConnectionAsync();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                var batch = await ReadAsync(connection, limits());
                if (batch.Events.Count > 0)
                {
                    continue;
                }

                if (batch.WaitingOn is null)
                {
                    return;
                }

                DateTime.UtcNow.Should().BeBefore(deadline, $"the reader stays blocked on {batch.WaitingOn} with every writer finished");
                await _reader.WaitForPendingHoleAsync(connection, TimeSpan.FromSeconds(1), CancellationToken.None);
            }
        }
    }

    private async Task<LimitedDrain> CaughtUpDrainAsync()
    {
        var drain = new LimitedDrain(db.DataSource, _schema);
        await drain.DrainAsync(() => new ReadLimits(10_000, long.MaxValue));
        drain.Batches.Clear();
        return drain;
    }

    private static long TextBytes(IEnumerable<CapturedEvent> events) => events.Sum(e => (long)(e.RowJson?.Length ?? 0) + (e.OldRowJson?.Length ?? 0));

    /// <summary>Random hex text: does not compress, so stored and rendered sizes agree.</summary>
    private static string Incompressible(int chars) => $"(SELECT left(string_agg(md5(random()::text), ''), {chars}) FROM generate_series(1, {(chars / 32) + 1}))";

    private async Task<List<LoggedEvent>> LogSinceAsync(LogPosition after)
    {
        var all = await BatchTesting.LogAsync(db, _schema.Settings.SchemaName);
        return all.Where(e => new LogPosition(e.Position, e.EventId).CompareTo(after) > 0).ToList();
    }

    [Fact]
    public async Task No_read_holds_more_rendered_bytes_than_its_bound_unless_it_holds_a_single_event_and_a_larger_row_comes_alone()
    {
        var drain = await CaughtUpDrainAsync();
        var start = drain.Position;
        var id = NextIds(20);
        await db.ExecuteAsync($"INSERT INTO items VALUES ({id}, 'small')");
        await db.ExecuteAsync($"INSERT INTO items VALUES ({id + 1}, {Incompressible(5000)})");
        for (var i = 2; i < 12; i++)
        {
            await db.ExecuteAsync($"INSERT INTO items VALUES ({id + i}, {Incompressible(250)})");
        }

        await drain.DrainAsync(() => new ReadLimits(100, 1024));

        drain.Delivered.Keys().Should().Equal((await LogSinceAsync(start)).Keys(), "every event, in order");
        foreach (var batch in drain.Batches.Where(b => b.Events.Count > 1))
        {
            TextBytes(batch.Events).Should().BeLessThanOrEqualTo(1024,
                $"a read of {batch.Events.Count} events stops before the event that would cross the bound (sizes {string.Join(", ", batch.Events.Select(e => e.RowJson!.Length))})");
        }

        drain.Batches.Single(b => b.Events.Any(e => e.RowJson!.Length > 1024)).Events.Should().ContainSingle("a row larger than the bound comes alone");
        drain.Batches.Max(b => b.Events.Count).Should().BeGreaterThan(1, "rows well under the bound share reads");
    }

    [Fact]
    public async Task A_row_stored_compressed_under_the_bound_but_rendered_over_it_is_bounded_on_the_client_side()
    {
        var drain = await CaughtUpDrainAsync();
        var start = drain.Position;
        var id = NextIds(10);
        await db.ExecuteAsync($"INSERT INTO items VALUES ({id}, 'small')");
        for (var i = 1; i <= 4; i++)
        {
            await db.ExecuteAsync($"INSERT INTO items VALUES ({id + i}, repeat('x', 6000))");
        }

        await db.ExecuteAsync($"INSERT INTO items VALUES ({id + 5}, 'small too')");
        (await db.ScalarAsync<int>($"SELECT max(pg_column_size(row_data)) FROM {_schema.Settings.SchemaName}.events WHERE (row_data->>'id')::int BETWEEN {id + 1} AND {id + 4}"))
            .Should().BeLessThan(1024, "the images are stored compressed, so the server-side bound lets them all through");

        await drain.DrainAsync(() => new ReadLimits(100, 8000));

        drain.Delivered.Keys().Should().Equal((await LogSinceAsync(start)).Keys());
        foreach (var batch in drain.Batches.Where(b => b.Events.Count > 1))
        {
            TextBytes(batch.Events).Should().BeLessThanOrEqualTo(8000,
                $"the rendered text is bounded too (sizes {string.Join(", ", batch.Events.Select(e => e.RowJson!.Length))})");
        }
    }

    [Fact]
    public async Task Whole_transaction_reads_end_at_transaction_ends_under_byte_limits_and_read_a_transaction_over_the_limits_whole()
    {
        var drain = await CaughtUpDrainAsync();
        var start = drain.Position;
        var id = NextIds(30);
        await BatchTesting.InTransactionAsync(db, Enumerable.Range(0, 3).Select(i => $"INSERT INTO items VALUES ({id + i}, {Incompressible(250)})").ToArray());
        await BatchTesting.InTransactionAsync(db, Enumerable.Range(3, 10).Select(i => $"INSERT INTO items VALUES ({id + i}, {Incompressible(250)})").ToArray());
        await BatchTesting.InTransactionAsync(db, $"INSERT INTO items VALUES ({id + 13}, 'one')", $"INSERT INTO items VALUES ({id + 14}, 'two')");
        await BatchTesting.InTransactionAsync(db, $"INSERT INTO items VALUES ({id + 15}, 'three')");

        await drain.DrainAsync(() => new ReadLimits(4, 1024, WholeTransactions: true));

        var log = await LogSinceAsync(start);
        drain.Delivered.Keys().Should().Equal(log.Keys());
        var sizes = log.GroupBy(e => e.Position).ToDictionary(g => g.Key, g => g.Count());
        drain.Batches.Should().AllSatisfy(b =>
        {
            b.EndsTransaction.Should().BeTrue();
            b.Events.GroupBy(e => e.Position).Should().AllSatisfy(t => t.Count().Should().Be(sizes[t.Key], "a transaction is never split"));
        });
        drain.Batches.Select(b => b.Events.Select(e => e.Position).Distinct().Count()).Should().Equal([1, 1, 2],
            "T1 fits alone (T2's first row would cross the bound), T2 (over both limits) comes whole on its own, T3 and T4 share a read");
    }

    [Fact]
    public async Task A_late_committing_holder_blocks_limited_whole_transaction_reads_and_is_delivered_first_in_commit_order()
    {
        var drain = await CaughtUpDrainAsync();
        var start = drain.Position;
        var id = NextIds(20);
        await using var gateKeeper = await db.DataSource.OpenConnectionAsync();
        await using var slow = await db.DataSource.OpenConnectionAsync();
        await OrderingTable.ExecuteAsync(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");
        await OrderingTable.ExecuteAsync(slow,
            $"BEGIN; INSERT INTO items VALUES ({id}, 'slow a'); INSERT INTO items VALUES ({id + 1}, {Incompressible(900)}); INSERT INTO gate (action) VALUES ('wait')");
        var slowCommit = OrderingTable.ExecuteAsync(slow, "COMMIT");
        await Interleaving.ReleasingOnFailureAsync([gateKeeper], [slowCommit], async () =>
        {
            await OrderingTable.WaitUntilBlockedAtGateAsync(db);
            for (var t = 0; t < 4; t++)
            {
                await BatchTesting.InTransactionAsync(db,
                    $"INSERT INTO items VALUES ({id + 2 + (2 * t)}, {Incompressible(300)})", $"INSERT INTO items VALUES ({id + 3 + (2 * t)}, {Incompressible(300)})");
            }

            for (var read = 0; read < 3; read++)
            {
                var batch = await drain.ReadOnceAsync(new ReadLimits(3, 1024, WholeTransactions: true));
                batch.Events.Should().BeEmpty("the slow transaction holds an earlier position and can still commit");
                batch.WaitingOn.Should().NotBeNull();
            }
        });

        await OrderingTable.ExecuteAsync(gateKeeper, "COMMIT");
        await slowCommit;
        await drain.DrainAsync(() => new ReadLimits(3, 1024, WholeTransactions: true));

        var log = await LogSinceAsync(start);
        drain.Delivered.Keys().Should().Equal(log.Keys(), "the late holder first, then the rest in commit order");
        drain.Delivered.Take(2).Select(e => e.Position).Distinct().Should().ContainSingle();
        var sizes = log.GroupBy(e => e.Position).ToDictionary(g => g.Key, g => g.Count());
        drain.Batches.Should().AllSatisfy(b => b.Events.GroupBy(e => e.Position).Should().AllSatisfy(t => t.Count().Should().Be(sizes[t.Key])));
    }

    [Fact]
    public async Task A_burnt_position_before_a_transaction_larger_than_the_read_is_passed_over_without_losing_or_splitting_that_transaction()
    {
        var drain = await CaughtUpDrainAsync();
        var start = drain.Position;
        var id = NextIds(20);
        await db.ExecuteAsync($"INSERT INTO items VALUES ({id}, 'before the hole')");
        await using var gateKeeper = await db.DataSource.OpenConnectionAsync();
        await using var failing = await db.DataSource.OpenConnectionAsync();
        await OrderingTable.ExecuteAsync(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");
        await OrderingTable.ExecuteAsync(failing, $"BEGIN; INSERT INTO items VALUES ({id + 1}, 'never'); INSERT INTO gate (action) VALUES ('wait-then-fail')");
        var failingCommit = OrderingTable.ExecuteAsync(failing, "COMMIT");
        await Interleaving.ReleasingOnFailureAsync([gateKeeper], [failingCommit], async () =>
        {
            await OrderingTable.WaitUntilBlockedAtGateAsync(db);
            await BatchTesting.InTransactionAsync(db, Enumerable.Range(2, 8).Select(i => $"INSERT INTO items VALUES ({id + i}, 'after {i}')").ToArray());
            await db.ExecuteAsync($"INSERT INTO items VALUES ({id + 10}, 'last')");
        });

        await OrderingTable.ExecuteAsync(gateKeeper, "COMMIT");
        var commit = () => failingCommit;
        await commit.Should().ThrowAsync<PostgresException>();

        // One read sees the first transaction, the burnt position and part of the large one.
        await drain.DrainAsync(() => new ReadLimits(3, long.MaxValue, WholeTransactions: true));

        var log = await LogSinceAsync(start);
        drain.Delivered.Keys().Should().Equal(log.Keys());
        drain.Batches.Select(b => b.Events.Count).Should().Equal([1, 8, 1], "the eight-row transaction comes whole, after the burnt position");
    }

    [Fact]
    public async Task Concurrent_writers_with_late_and_burnt_positions_lose_nothing_reorder_nothing_and_split_no_transaction_under_tiny_limits()
    {
        var drain = await CaughtUpDrainAsync();
        var start = drain.Position;
        var baseId = NextIds(10_000);
        var nextId = baseId;
        var writers = Enumerable.Range(0, 6).Select(w => Task.Run(async () =>
        {
            var random = new Random(w * 7919);
            await using var connection = await db.DataSource.OpenConnectionAsync();
            for (var t = 0; t < 25; t++)
            {
                var rows = random.Next(1, 6);
                var statements = new List<string> { "BEGIN" };
                for (var r = 0; r < rows; r++)
                {
                    var label = random.Next(4) == 0 ? Incompressible(random.Next(200, 900)) : "'small'";
                    statements.Add($"INSERT INTO items VALUES ({Interlocked.Increment(ref nextId)}, {label})");
                }

                var action = random.Next(10) switch { 0 => "pause", 1 => "fail", _ => null };
                if (action is not null)
                {
                    statements.Add($"INSERT INTO gate (action) VALUES ('{action}')");
                }

                try
                {
                    await OrderingTable.ExecuteAsync(connection, string.Join("; ", statements) + "; COMMIT");
                }
                catch (PostgresException e) when (e.MessageText.Contains("gate refused", StringComparison.Ordinal))
                {
                    await OrderingTable.ExecuteAsync(connection, "ROLLBACK");
                }
            }
        })).ToArray();

        var limitsRandom = new Random(42);
        ReadLimits Limits() => new(limitsRandom.Next(1, 8), 1024 + limitsRandom.Next(0, 2048), WholeTransactions: true);
        var allWritten = Task.WhenAll(writers);
        while (!allWritten.IsCompleted)
        {
            await drain.ReadOnceAsync(Limits());
        }

        await allWritten;
        await drain.DrainAsync(Limits);

        var log = await LogSinceAsync(start);
        log.Should().NotBeEmpty();
        drain.Delivered.Keys().Should().Equal(log.Keys(), "every committed event exactly once, in commit order");
        var sizes = log.GroupBy(e => e.Position).ToDictionary(g => g.Key, g => g.Count());
        drain.Batches.Should().AllSatisfy(b =>
        {
            b.EndsTransaction.Should().BeTrue();
            b.Events.GroupBy(e => e.Position).Should().AllSatisfy(t => t.Count().Should().Be(sizes[t.Key], "no read ends inside a transaction"));
        });
    }
}
