using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Batching;

/// <summary>
/// <see cref="BatchBoundary.Transaction"/> keeps every source transaction in one batch, whatever the
/// writers do; <see cref="BatchBoundary.Change"/> may split them, and
/// <see cref="ChangeBatch.EndsAtTransactionBoundary"/> says truthfully where.
/// </summary>
public sealed class BatchBoundaryTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly Action<IServiceCollection> WithBatchLog = s => s.AddSingleton<BatchLog>();

    private Task CreateTablesAsync(params string[] tables) =>
        db.ExecuteAsync(string.Concat(tables.Select(t => $"CREATE TABLE {t} (id bigint PRIMARY KEY, label text NOT NULL);")));

    /// <summary>Each batch's claim against the log: the last change ends its transaction exactly when the next logged event has another position.</summary>
    private static void BoundaryClaimsShouldBeTrue(IReadOnlyList<SeenBatch> batches, List<LoggedEvent> log)
    {
        var lastOfTransaction = log.GroupBy(e => e.Position).ToDictionary(g => g.Key, g => g.Max(e => e.EventId));
        foreach (var batch in batches)
        {
            var last = batch.Changes[^1];
            batch.EndsAtTransactionBoundary.Should().Be(lastOfTransaction[last.Position] == last.EventId,
                $"the batch ending at {last.Position}/{last.EventId} claims EndsAtTransactionBoundary = {batch.EndsAtTransactionBoundary}");
        }
    }

    [Fact]
    public async Task With_BatchBoundary_Transaction_no_batch_ever_ends_inside_a_transaction_of_many_concurrent_writers()
    {
        const string name = "bb_concurrent";
        await CreateTablesAsync("bb_one", "bb_two");
        await BatchTesting.TrackAheadAsync(db, name, "bb_one", "bb_two");
        long nextId = 0;
        async Task WriteAsync(int writer, int transactions)
        {
            var random = new Random(writer);
            for (var t = 0; t < transactions; t++)
            {
                var statements = Enumerable.Range(0, random.Next(1, 26)).Select(_ =>
                {
                    var id = Interlocked.Increment(ref nextId);
                    var label = random.Next(5) == 0 ? new string('y', random.Next(100, 600)) + id : "row " + id;
                    return $"INSERT INTO {(random.Next(2) == 0 ? "bb_one" : "bb_two")} VALUES ({id}, '{label}')";
                }).ToArray();
                await BatchTesting.InTransactionAsync(db, statements);
            }
        }

        // A backlog, then writers racing the running consumer.
        await Task.WhenAll(Enumerable.Range(0, 3).Select(w => Task.Run(() => WriteAsync(100 + w, 10))));
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bb_one", "bb_two"),
            o => { o.ConsumerName = name; o.BatchSize = 10; o.MaxBatchBytes = 4096; o.BatchBoundary = BatchBoundary.Transaction; },
            services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await Task.WhenAll(Enumerable.Range(0, 6).Select(w => Task.Run(() => WriteAsync(w, 25))));
        var all = await BatchTesting.LogAsync(db, "log_" + name);
        await log.WaitForChangesAsync("batch", all.Count);

        var batches = log.Of("batch");
        batches.SelectMany(b => b.Changes).Keys().Should().Equal(all.Keys(), "every change once, in commit order");
        batches.Should().OnlyContain(b => b.EndsAtTransactionBoundary);
        var sizes = all.GroupBy(e => e.TransactionId).ToDictionary(g => g.Key, g => g.Count());
        foreach (var batch in batches)
        {
            foreach (var transaction in batch.Changes.GroupBy(ch => ch.TransactionId))
            {
                transaction.Count().Should().Be(sizes[transaction.Key], $"transaction {transaction.Key} is delivered in one batch");
            }
        }

        batches.Should().Contain(b => b.Changes.Count > 10, "transactions larger than BatchSize come whole");
        batches.Should().Contain(b => b.Changes.Select(ch => ch.TransactionId).Distinct().Count() > 1, "small transactions share batches");
    }

    [Fact]
    public async Task With_BatchBoundary_Transaction_a_transaction_larger_than_BatchSize_is_delivered_whole_in_one_batch()
    {
        const string name = "bb_huge";
        await CreateTablesAsync("bb_huge_t");
        await BatchTesting.TrackAheadAsync(db, name, "bb_huge_t");
        await db.ExecuteAsync("INSERT INTO bb_huge_t VALUES (1, 'before')");
        await db.ExecuteAsync("INSERT INTO bb_huge_t SELECT i, 'bulk ' || i FROM generate_series(2, 1201) AS i");
        await db.ExecuteAsync("INSERT INTO bb_huge_t VALUES (1202, 'after')");
        var all = await BatchTesting.LogAsync(db, "log_" + name);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bb_huge_t"),
            o => { o.ConsumerName = name; o.BatchSize = 100; o.BatchBoundary = BatchBoundary.Transaction; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForChangesAsync("batch", all.Count);

        var batches = log.Of("batch");
        batches.SelectMany(b => b.Changes).Keys().Should().Equal(all.Keys());
        batches.Select(b => b.Changes.Count).Should().Equal(1, 1200, 1);
        batches.Should().OnlyContain(b => b.EndsAtTransactionBoundary);
    }

    [Fact]
    public async Task With_BatchBoundary_Change_batches_split_transactions_and_EndsAtTransactionBoundary_tells_where()
    {
        const string name = "bb_change";
        await CreateTablesAsync("bb_split");
        await BatchTesting.TrackAheadAsync(db, name, "bb_split");
        for (var t = 0; t < 20; t++)
        {
            await db.ExecuteAsync($"INSERT INTO bb_split SELECT i, 'row ' || i FROM generate_series({(t * 7) + 1}, {(t * 7) + 1 + (t % 4) + 3}) AS i");
        }

        var all = await BatchTesting.LogAsync(db, "log_" + name);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bb_split"),
            o => { o.ConsumerName = name; o.BatchSize = 5; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForChangesAsync("batch", all.Count);

        var batches = log.Of("batch");
        batches.SelectMany(b => b.Changes).Keys().Should().Equal(all.Keys());
        batches.Should().OnlyContain(b => b.Changes.Count <= 5);
        batches.Should().Contain(b => !b.EndsAtTransactionBoundary, "transactions of 4 to 7 rows do not fit batches of 5");
        batches.Should().Contain(b => b.EndsAtTransactionBoundary);
        BoundaryClaimsShouldBeTrue(batches, all);
    }

    [Fact]
    public async Task EndsAtTransactionBoundary_is_true_when_a_transaction_ends_with_a_change_of_a_table_the_batch_handler_does_not_serve()
    {
        const string name = "bb_other_table";
        await CreateTablesAsync("bb_served", "bb_row_handled");
        await BatchTesting.TrackAheadAsync(db, name, "bb_served", "bb_row_handled");
        await BatchTesting.InTransactionAsync(db, "INSERT INTO bb_served VALUES (1, 'served')", "INSERT INTO bb_row_handled VALUES (2, 'row handled')");
        var all = await BatchTesting.LogAsync(db, "log_" + name);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
                .AddBatchHandler<RecordingBatchHandler>("bb_served")
                .AddHandler<BatchRow, RecordingHandler<BatchRow>>("bb_row_handled"),
            o => { o.ConsumerName = name; o.BatchBoundary = BatchBoundary.Transaction; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForChangesAsync("batch", 1);
        await host.Sink.WaitForCountAsync(1);

        // Nothing more of that transaction comes to this handler, which is what the flag promises.
        log.Of("batch").Should().ContainSingle().Which.EndsAtTransactionBoundary.Should().BeTrue();
        all.Should().HaveCount(2);
    }
}
