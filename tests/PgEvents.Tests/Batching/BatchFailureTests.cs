using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Batching;

/// <summary>
/// A batch handler failing for one poison row: the whole batch blocks under
/// <see cref="FailurePolicy.Block"/>; under <see cref="FailurePolicy.DeadLetter"/> only the poison is
/// moved aside and the rest of its batch is delivered, and a replay reaches the batch handler.
/// </summary>
public sealed class BatchFailureTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private Task CreateTableAsync(string table) => db.ExecuteAsync($"CREATE TABLE {table} (id bigint PRIMARY KEY, label text NOT NULL)");

    private static ConsumerHost Create(DatabaseFixture db, string name, FailureSwitch poison, Action<PgEventsOptions>? configure = null) =>
        ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<PoisonBatchHandler>(name),
            o =>
            {
                o.ConsumerName = name;
                configure?.Invoke(o);
            },
            services: s => s.AddSingleton<BatchLog>().AddSingleton(poison));

    [Fact]
    public async Task Under_Block_a_poison_row_blocks_its_whole_batch_naming_the_batch_first_event_and_delivery_resumes_in_order_once_fixed()
    {
        const string name = "bf_block";
        await CreateTableAsync(name);
        await BatchTesting.TrackAheadAsync(db, name, name);
        for (var id = 1; id <= 10; id++)
        {
            await db.ExecuteAsync($"INSERT INTO {name} VALUES ({id}, 'item {id}')");
        }

        var first = (await BatchTesting.LogAsync(db, "log_" + name))[0];
        var poison = new FailureSwitch { FailingId = 5 };
        await using var host = await Create(db, name, poison).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await poison.WaitForAttemptsAsync(3);

        var status = await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.Blocked is { Attempts: >= 2 }, "the consumer should report the block");
        status.Blocked!.Position.Should().Be(first.Position, "the status names the blocked batch's first event");
        status.Blocked.EventId.Should().Be(first.EventId);
        status.Blocked.LastError.Should().Contain("boom on item 5");
        status.CursorPosition.Should().BeLessThan(first.Position, "the cursor stays before the batch");

        await db.ExecuteAsync($"INSERT INTO {name} VALUES (11, 'item 11')");
        await poison.WaitForAttemptsAsync(poison.Attempts + 3);
        log.Batches.Should().BeEmpty("no part of the blocked batch, nor anything after it, is delivered");

        poison.Failing = false;
        await log.WaitForIdAsync("poison", 11);
        log.ChangesOf("poison").Keys().Should().Equal((await BatchTesting.LogAsync(db, "log_" + name)).Keys());
        (await host.Consumer.GetStatusAsync()).Blocked.Should().BeNull();
    }

    [Fact]
    public async Task Under_DeadLetter_only_the_poison_row_of_a_failing_batch_is_dead_lettered_every_other_change_is_delivered_and_its_replay_reaches_the_batch_handler()
    {
        const string name = "bf_deadletter";
        await CreateTableAsync(name);
        await BatchTesting.TrackAheadAsync(db, name, name);
        await BatchTesting.InTransactionAsync(db, Enumerable.Range(1, 3).Select(id => $"INSERT INTO {name} VALUES ({id}, 'item {id}')").ToArray());
        await BatchTesting.InTransactionAsync(db, Enumerable.Range(4, 3).Select(id => $"INSERT INTO {name} VALUES ({id}, 'item {id}')").ToArray());
        for (var id = 7; id <= 10; id++)
        {
            await db.ExecuteAsync($"INSERT INTO {name} VALUES ({id}, 'item {id}')");
        }

        var poison = new FailureSwitch { FailingId = 5 };
        await using var host = await Create(db, name, poison, o => { o.FailurePolicy = FailurePolicy.DeadLetter; o.Retry.MaxAttempts = 2; }).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForIdAsync("poison", 10);

        log.ChangesOf("poison").Select(BatchLog.IdOf).Should().Equal([1, 2, 3, 4, 6, 7, 8, 9, 10], "every change of the batch but the poison, once, in order");
        poison.Attempts.Should().Be(4, "two attempts of the batch, then two of the poison alone");
        var letter = (await host.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Subject;
        letter.RowJson.Should().Contain("\"id\": 5");
        letter.Attempts.Should().Be(2);
        (await host.Consumer.GetStatusAsync()).Blocked.Should().BeNull();

        await db.ExecuteAsync($"INSERT INTO {name} VALUES (11, 'item 11')");
        await log.WaitForIdAsync("poison", 11);

        poison.Failing = false;
        await host.Consumer.ReplayDeadLetterAsync(letter.Id);
        var replayed = log.Of("poison")[^1];
        replayed.Changes.Should().ContainSingle().Which.EventId.Should().Be(letter.EventId);
        (await host.Consumer.GetDeadLettersAsync()).Should().BeEmpty();
    }

    [Fact]
    public async Task Changes_delivered_one_by_one_to_isolate_a_poison_say_truthfully_whether_they_end_their_transaction()
    {
        const string name = "bf_isolated_bounds";
        await CreateTableAsync(name);
        await BatchTesting.TrackAheadAsync(db, name, name);
        await BatchTesting.InTransactionAsync(db, Enumerable.Range(1, 3).Select(id => $"INSERT INTO {name} VALUES ({id}, 'item {id}')").ToArray());
        await BatchTesting.InTransactionAsync(db, Enumerable.Range(4, 3).Select(id => $"INSERT INTO {name} VALUES ({id}, 'item {id}')").ToArray());
        await db.ExecuteAsync($"INSERT INTO {name} VALUES (7, 'item 7')");

        var poison = new FailureSwitch { FailingId = 5 };
        await using var host = await Create(db, name, poison, o => { o.FailurePolicy = FailurePolicy.DeadLetter; o.Retry.MaxAttempts = 2; }).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();
        await log.WaitForIdAsync("poison", 7);

        var all = await BatchTesting.LogAsync(db, "log_" + name);
        var lastOfTransaction = all.GroupBy(e => e.Position).ToDictionary(g => g.Key, g => g.Max(e => e.EventId));
        log.Of("poison").Select(b => (Id: BatchLog.IdOf(b.Changes.Single()), b.EndsAtTransactionBoundary)).Should().Equal(
            [(1, false), (2, false), (3, true), (4, false), (6, true), (7, true)],
            "item 3 ends its transaction and item 6 is the last of its transaction delivered (5 was dead-lettered)");
        lastOfTransaction.Should().HaveCount(3);
    }
}
