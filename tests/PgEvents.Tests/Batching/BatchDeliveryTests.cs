using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Batching;

/// <summary>
/// What a batch handler receives: every change of its tables, in commit order, several tables and
/// transactions per call, within <see cref="PgEventsOptions.BatchSize"/> and
/// <see cref="PgEventsOptions.MaxBatchBytes"/>; beside row handlers of the same consumer; and with
/// tables nobody handles.
/// </summary>
public sealed class BatchDeliveryTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly Action<IServiceCollection> WithBatchLog = s => s.AddSingleton<BatchLog>();

    private static string Incompressible(int chars) => $"(SELECT left(string_agg(md5(random()::text), ''), {chars}) FROM generate_series(1, {(chars / 32) + 1}))";

    private Task CreateTablesAsync(params string[] tables) =>
        db.ExecuteAsync(string.Concat(tables.Select(t => $"CREATE TABLE {t} (id bigint PRIMARY KEY, label text NOT NULL);")));

    [Fact]
    public async Task A_batch_handler_gets_every_change_of_its_tables_in_commit_order_several_tables_and_transactions_per_call_within_BatchSize()
    {
        const string name = "bd_order";
        await CreateTablesAsync("bd_a", "bd_b", "bd_c");
        await BatchTesting.TrackAheadAsync(db, name, "bd_a", "bd_b", "bd_c");

        // A backlog waiting when the consumer starts: inserts, updates and deletes over three tables.
        var random = new Random(7);
        var tables = new[] { "bd_a", "bd_b", "bd_c" };
        var live = tables.ToDictionary(t => t, _ => new List<long>());
        long id = 0;
        for (var t = 0; t < 120; t++)
        {
            var statements = new List<string>();
            for (var r = random.Next(1, 5); r > 0; r--)
            {
                var table = tables[random.Next(3)];
                var existing = live[table];
                switch (random.Next(5))
                {
                    case 0 when existing.Count > 0:
                        statements.Add($"UPDATE {table} SET label = 'updated {t}' WHERE id = {existing[random.Next(existing.Count)]}");
                        break;
                    case 1 when existing.Count > 0:
                        var victim = existing[random.Next(existing.Count)];
                        existing.Remove(victim);
                        statements.Add($"DELETE FROM {table} WHERE id = {victim}");
                        break;
                    default:
                        existing.Add(++id);
                        statements.Add($"INSERT INTO {table} VALUES ({id}, 'row {id}')");
                        break;
                }
            }

            await BatchTesting.InTransactionAsync(db, [.. statements]);
        }

        var ab = (await BatchTesting.LogAsync(db, "log_" + name)).Where(e => e.Table is "bd_a" or "bd_b").ToList();
        var c = await BatchTesting.LogAsync(db, "log_" + name, "bd_c");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
                .AddBatchHandler<RecordingBatchHandler>("bd_a", "public.bd_b")
                .AddBatchHandler<OtherBatchHandler>("bd_c"),
            o => { o.ConsumerName = name; o.BatchSize = 25; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForChangesAsync("batch", ab.Count);
        await log.WaitForChangesAsync("other", c.Count);

        log.ChangesOf("batch").Keys().Should().Equal(ab.Keys(), "every change of bd_a and bd_b, once, in commit order");
        log.ChangesOf("other").Keys().Should().Equal(c.Keys(), "every change of bd_c, once, in commit order");
        log.ChangesOf("batch").Select(ch => ch.Table.Name).Should().OnlyContain(t => t == "bd_a" || t == "bd_b");
        var batches = log.Of("batch");
        batches.Should().OnlyContain(b => b.Changes.Count <= 25);
        batches.Should().Contain(b => b.Changes.Select(ch => ch.Table).Distinct().Count() == 2 && b.Changes.Select(ch => ch.Position).Distinct().Count() > 5,
            "one call carries several tables and several transactions");
        batches.Count.Should().BeLessThanOrEqualTo((ab.Count + c.Count + 24) / 25, "one call per read of at most 25 events");

        // Rows stay JSON until asked for; every kind comes with its images.
        var changes = log.ChangesOf("batch");
        changes.Where(ch => ch.Kind == ChangeKind.Update).Should().NotBeEmpty().And.OnlyContain(ch =>
            ch.GetRow<BatchRow>()!.Label.StartsWith("updated", StringComparison.Ordinal) && ch.GetOldRow<BatchRow>() != null);
        changes.Where(ch => ch.Kind == ChangeKind.Delete).Should().NotBeEmpty().And.OnlyContain(ch => ch.GetRow<BatchRow>() != null && ch.OldRowJson == null);
    }

    [Fact]
    public async Task Large_rows_make_batches_within_MaxBatchBytes_and_a_row_larger_than_the_limit_arrives_alone()
    {
        const string name = "bd_bytes";
        await CreateTablesAsync("bd_large");
        await BatchTesting.TrackAheadAsync(db, name, "bd_large");
        await db.ExecuteAsync("INSERT INTO bd_large VALUES (1, 'small')");
        await db.ExecuteAsync($"INSERT INTO bd_large VALUES (2, {Incompressible(1_500_000)})");
        for (var id = 3; id <= 17; id++)
        {
            await db.ExecuteAsync($"INSERT INTO bd_large VALUES ({id}, {Incompressible(200_000)})");
        }

        var expected = await BatchTesting.LogAsync(db, "log_" + name);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bd_large"),
            o => { o.ConsumerName = name; o.MaxBatchBytes = 1024 * 1024; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForChangesAsync("batch", expected.Count);

        var batches = log.Of("batch");
        batches.SelectMany(b => b.Changes).Keys().Should().Equal(expected.Keys());
        batches.Single(b => b.Changes.Any(ch => BatchLog.IdOf(ch) == 2)).Changes.Should().ContainSingle("a row larger than MaxBatchBytes arrives alone");
        foreach (var batch in batches.Where(b => b.Changes.Count > 1))
        {
            batch.TextBytes.Should().BeLessThanOrEqualTo(1024 * 1024,
                $"a batch of {batch.Changes.Count} rows ({string.Join(", ", batch.Changes.Select(ch => ch.RowJson!.Length))} bytes) stays within MaxBatchBytes");
        }

        batches.Where(b => b.Changes.All(ch => BatchLog.IdOf(ch) >= 3)).Max(b => b.Changes.Count).Should().BeInRange(4, 5, "200 KB rows fill 1 MiB batches");
    }

    [Fact]
    public async Task A_large_row_stored_compressed_is_still_bounded_by_its_rendered_size()
    {
        const string name = "bd_compressed";
        await CreateTablesAsync("bd_squeezed");
        await BatchTesting.TrackAheadAsync(db, name, "bd_squeezed");
        for (var id = 1; id <= 3; id++)
        {
            await db.ExecuteAsync($"INSERT INTO bd_squeezed VALUES ({(id * 2) - 1}, 'small {id}')");
            await db.ExecuteAsync($"INSERT INTO bd_squeezed VALUES ({id * 2}, repeat('x', 2000000))");
        }

        (await db.ScalarAsync<int>($"SELECT max(pg_column_size(row_data)) FROM log_{name}.events")).Should().BeLessThan(256 * 1024,
            "the images are stored compressed, far below MaxBatchBytes");
        var expected = await BatchTesting.LogAsync(db, "log_" + name);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bd_squeezed"),
            o => { o.ConsumerName = name; o.MaxBatchBytes = 1024 * 1024; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForChangesAsync("batch", expected.Count);

        var batches = log.Of("batch");
        batches.SelectMany(b => b.Changes).Keys().Should().Equal(expected.Keys());
        batches.Where(b => b.Changes.Any(ch => ch.RowJson!.Length > 1024 * 1024)).Should().HaveCount(3).And.OnlyContain(b => b.Changes.Count == 1,
            "each 2 MB rendered row arrives alone, though stored in a few KB");
    }

    [Fact]
    public async Task Row_handlers_and_a_batch_handler_in_one_consumer_each_see_every_change_once_in_commit_order()
    {
        const string name = "bd_mixed";
        await CreateTablesAsync("bd_mixed_a", "bd_mixed_b");
        await BatchTesting.TrackAheadAsync(db, name, "bd_mixed_a", "bd_mixed_b");
        await WriteAlternatingAsync("bd_mixed_a", "bd_mixed_b", 1, 40);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
                .AddHandler<BatchRow, RecordingHandler<BatchRow>>("bd_mixed_a")
                .AddBatchHandler<RecordingBatchHandler>("bd_mixed_a", "bd_mixed_b")
                .AddHandler<BatchRow, SecondRecordingHandler<BatchRow>>("bd_mixed_b"),
            o => { o.ConsumerName = name; o.BatchSize = 15; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await WriteAlternatingAsync("bd_mixed_a", "bd_mixed_b", 41, 80);
        var all = await BatchTesting.LogAsync(db, "log_" + name);
        await log.WaitForChangesAsync("batch", all.Count);
        await host.Sink.WaitForCountAsync(all.Count);

        log.ChangesOf("batch").Keys().Should().Equal(all.Keys());
        host.Sink.Deliveries.Where(d => d.Handler.StartsWith("RecordingHandler", StringComparison.Ordinal)).Select(d => (d.Position, d.EventId))
            .Should().Equal(all.Where(e => e.Table == "bd_mixed_a").Keys());
        host.Sink.Deliveries.Where(d => d.Handler == "second").Select(d => (d.Position, d.EventId))
            .Should().Equal(all.Where(e => e.Table == "bd_mixed_b").Keys());
    }

    [Fact]
    public async Task When_a_batch_handler_fails_row_handlers_of_the_batch_see_repeats_but_every_handler_gets_everything_in_commit_order()
    {
        const string name = "bd_flaky";
        await CreateTablesAsync("bd_flaky_a", "bd_flaky_b");
        await BatchTesting.TrackAheadAsync(db, name, "bd_flaky_a", "bd_flaky_b");
        await WriteAlternatingAsync("bd_flaky_a", "bd_flaky_b", 1, 40);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
                .AddHandler<BatchRow, RecordingHandler<BatchRow>>("bd_flaky_a")
                .AddBatchHandler<FlakyBatchHandler>("bd_flaky_a", "bd_flaky_b")
                .AddHandler<BatchRow, SecondRecordingHandler<BatchRow>>("bd_flaky_b"),
            o => { o.ConsumerName = name; o.BatchSize = 15; },
            services: s => s.AddSingleton<BatchLog>().AddSingleton(new FlakySchedule { Every = 2 })).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await WriteAlternatingAsync("bd_flaky_a", "bd_flaky_b", 41, 80);
        var all = await BatchTesting.LogAsync(db, "log_" + name);
        await log.WaitForChangesAsync("flaky", all.Count);

        host.Services.GetRequiredService<FlakySchedule>().Failures.Should().BePositive();
        log.ChangesOf("flaky").Keys().Should().Equal(all.Keys(), "the batch handler's successful calls cover everything once, in order");
        var first = host.Sink.Deliveries.Where(d => d.Handler.StartsWith("RecordingHandler", StringComparison.Ordinal)).Select(d => (d.Position, d.EventId)).ToList();
        var second = host.Sink.Deliveries.Where(d => d.Handler == "second").Select(d => (d.Position, d.EventId)).ToList();
        BatchTesting.ShouldBeCompleteAndOrderedWithRepeats(first, all.Where(e => e.Table == "bd_flaky_a").Keys().ToList(), "row handler of bd_flaky_a");
        BatchTesting.ShouldBeCompleteAndOrderedWithRepeats(second, all.Where(e => e.Table == "bd_flaky_b").Keys().ToList(), "row handler of bd_flaky_b");
        (first.Count + second.Count).Should().BeGreaterThan(all.Count, "a retried batch runs its row handlers again");
    }

    [Fact]
    public async Task A_table_whose_handler_was_removed_blocks_the_batch_holding_its_backlog_by_default()
    {
        const string name = "bd_unmapped_block";
        await CreateTablesAsync("bd_ub_mapped", "bd_ub_unmapped");
        await using (var before = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bd_ub_mapped", "bd_ub_unmapped"),
                         o => o.ConsumerName = name, services: WithBatchLog).StartAsync())
        {
            // Subscribed to both tables; the handler of the second is removed below.
            await Eventually.UntilAsync(async () => (await before.Consumer.GetStatusAsync()).IsActive, "the first consumer runs");
        }

        await db.ExecuteAsync("INSERT INTO bd_ub_mapped VALUES (1, 'one')");
        await db.ExecuteAsync("INSERT INTO bd_ub_unmapped VALUES (2, 'two')");
        await db.ExecuteAsync("INSERT INTO bd_ub_mapped VALUES (3, 'three')");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bd_ub_mapped"),
            o => o.ConsumerName = name, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();

        var status = await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.Blocked is { Attempts: >= 3 },
            "the consumer should block on the batch holding the removed table's event");
        status.Blocked!.LastError.Should().Contain("\"public\".\"bd_ub_unmapped\"").And.Contain("UnmappedTablePolicy");
        log.ChangesOf("batch").Select(BatchLog.IdOf).Should().NotContain(3, "nothing after the removed table's event is delivered");
    }

    [Fact]
    public async Task An_unmapped_table_in_a_batch_is_skipped_when_configured_and_the_rest_of_the_batch_is_delivered()
    {
        const string name = "bd_unmapped_skip";
        await CreateTablesAsync("bd_us_mapped", "bd_us_unmapped");
        await BatchTesting.TrackAheadAsync(db, name, "bd_us_mapped", "bd_us_unmapped");
        await BatchTesting.InTransactionAsync(db, "INSERT INTO bd_us_mapped VALUES (1, 'one')", "INSERT INTO bd_us_unmapped VALUES (2, 'two')",
            "INSERT INTO bd_us_mapped VALUES (3, 'three')");
        await db.ExecuteAsync("INSERT INTO bd_us_unmapped VALUES (4, 'four')");
        await db.ExecuteAsync("INSERT INTO bd_us_mapped VALUES (5, 'five')");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<RecordingBatchHandler>("bd_us_mapped"),
            o => { o.ConsumerName = name; o.UnmappedTablePolicy = UnmappedTablePolicy.Skip; }, services: WithBatchLog).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForIdAsync("batch", 5);

        // A read holding only unmapped events is skipped without calling anyone.
        await db.ExecuteAsync("INSERT INTO bd_us_unmapped VALUES (6, 'six')");
        await db.ExecuteAsync("INSERT INTO bd_us_mapped VALUES (7, 'seven')");
        await log.WaitForIdAsync("batch", 7);

        log.ChangesOf("batch").Select(BatchLog.IdOf).Should().Equal(1, 3, 5, 7);
        (await host.Consumer.GetStatusAsync()).Blocked.Should().BeNull();
    }

    private async Task WriteAlternatingAsync(string a, string b, int from, int to)
    {
        for (var id = from; id <= to; id += 2)
        {
            await BatchTesting.InTransactionAsync(db, $"INSERT INTO {a} VALUES ({id}, 'a {id}')", $"INSERT INTO {b} VALUES ({id + 1}, 'b {id + 1}')");
        }
    }
}
