using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Lanes;

public sealed record LaneItem(long Id, int Version);

/// <summary>What a lane handler saw, and a gate that holds one row's handler while others run.</summary>
public sealed class LaneLog
{
    public ConcurrentQueue<(long Id, int Version, string Kind)> Calls { get; } = new();

    public long HoldId { get; set; } = -1;

    /// <summary>Set once a handler of another row ran while the held row's handler was in flight.</summary>
    public TaskCompletionSource OtherRanMeanwhile { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource HeldEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

public sealed class LaneHandler(LaneLog log) : IRowHandler<LaneItem>
{
    public async Task HandleAsync(RowChange<LaneItem> change, CancellationToken cancellationToken)
    {
        if (change.Row is { } row && row.Id == log.HoldId && !log.Release.Task.IsCompleted)
        {
            log.HeldEntered.TrySetResult();
            await log.Release.Task.WaitAsync(cancellationToken);
        }
        else if (log.HeldEntered.Task.IsCompleted && !log.Release.Task.IsCompleted)
        {
            log.OtherRanMeanwhile.TrySetResult();
        }

        log.Calls.Enqueue((change.Row?.Id ?? -1, change.Row?.Version ?? -1, change.Kind.ToString()));
    }
}

public sealed class PoisonLaneHandler(LaneLog log) : IRowHandler<LaneItem>
{
    public Task HandleAsync(RowChange<LaneItem> change, CancellationToken cancellationToken)
    {
        if (change.Row!.Id == log.HoldId)
        {
            throw new InvalidOperationException($"poison row {change.Row.Id}");
        }

        log.Calls.Enqueue((change.Row.Id, change.Row.Version, change.Kind.ToString()));
        return Task.CompletedTask;
    }
}

public sealed class TransactionalLaneHandler : IRowHandler<LaneItem>
{
    public async Task HandleAsync(RowChange<LaneItem> change, CancellationToken cancellationToken) =>
        await change.GetTransactionAsync(cancellationToken);
}

public sealed class LaneBatchHandler : IBatchHandler
{
    public Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// Ordered parallel lanes: changes of one row stay in order on one lane, different rows run at once,
/// and the cursor never passes a change that has not completed.
/// </summary>
public sealed class DeliveryLaneTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private async Task<ConsumerHost> CreateAsync<THandler>(string name, LaneLog log, int lanes = 8)
        where THandler : class, IRowHandler<LaneItem>
    {
        await db.ExecuteAsync($"CREATE TABLE {name} (id bigint PRIMARY KEY, version int NOT NULL)");
        return ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<LaneItem, THandler>(name),
            o =>
            {
                o.ConsumerName = name;
                o.DeliveryLanes = lanes;
            },
            services: s => s.AddSingleton(log));
    }

    [Fact]
    public async Task Other_rows_run_past_a_held_row_the_cursor_waits_for_it_and_changes_of_one_row_keep_their_order()
    {
        var log = new LaneLog { HoldId = 1 };
        await using var host = await (await CreateAsync<LaneHandler>("lanes_order", log)).StartAsync();

        // One transaction, read at once: row 1's change is held in its handler.
        await db.ExecuteAsync("INSERT INTO lanes_order SELECT g, 1 FROM generate_series(1, 40) g");
        await log.HeldEntered.Task.WaitAsync(Wait);
        var position = await db.ScalarAsync<long>("SELECT max(position) FROM log_lanes_order.transactions");

        // Other rows are delivered while row 1's change has not completed (those hashed to row 1's
        // lane wait behind it).
        await Eventually.UntilAsync(() => log.Calls.Any(c => c.Id != 1), "other rows are delivered while row 1 is held");
        log.Calls.Should().NotContain(c => c.Id == 1);
        (await host.Consumer.GetStatusAsync()).CursorPosition.Should().BeLessThan(position, "the cursor never passes the change still in its handler");

        log.Release.SetResult();
        for (var version = 2; version <= 4; version++)
        {
            await db.ExecuteAsync($"UPDATE lanes_order SET version = {version}");
        }

        await Eventually.UntilAsync(() => log.Calls.Count == 40 * 4, "everything is delivered once row 1 is released");
        foreach (var row in log.Calls.GroupBy(c => c.Id))
        {
            row.Select(c => c.Version).Should().Equal([1, 2, 3, 4], $"row {row.Key}'s changes arrive in commit order");
        }

        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.CursorPosition == s.HeadPosition && s.LagEvents == 0, "the cursor reaches the head once every lane finished");
    }

    [Fact]
    public async Task Rows_committed_after_a_held_row_run_past_it_across_reads_while_the_cursor_stays_before_it()
    {
        var log = new LaneLog { HoldId = 1 };
        await using var host = await (await CreateAsync<LaneHandler>("lanes_ahead", log)).StartAsync();

        await db.ExecuteAsync("INSERT INTO lanes_ahead VALUES (1, 1)");
        await log.HeldEntered.Task.WaitAsync(Wait);
        var held = await db.ScalarAsync<long>("SELECT max(position) FROM log_lanes_ahead.transactions");
        for (var id = 2; id <= 20; id++)
        {
            await db.ExecuteAsync($"INSERT INTO lanes_ahead VALUES ({id}, 1)");
        }

        // Later transactions, read after the held one, are delivered on the other lanes meanwhile.
        await log.OtherRanMeanwhile.Task.WaitAsync(Wait);
        var status = await host.Consumer.GetStatusAsync();
        status.CursorPosition.Should().BeLessThan(held, "the cursor stays before the change still in its handler");

        log.Release.SetResult();
        await Eventually.UntilAsync(() => log.Calls.Count == 20, "everything is delivered once row 1 is released");
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.CursorPosition == s.HeadPosition && s.LagEvents == 0, "the cursor reaches the head");
    }

    [Fact]
    public async Task A_truncate_waits_for_every_change_before_it_and_everything_after_it_waits_for_the_truncate()
    {
        var log = new LaneLog();
        await using var host = await (await CreateAsync<LaneHandler>("lanes_truncate", log)).StartAsync();

        await db.ExecuteAsync("INSERT INTO lanes_truncate SELECT g, 1 FROM generate_series(1, 30) g");
        await db.ExecuteAsync("TRUNCATE lanes_truncate");
        await db.ExecuteAsync("INSERT INTO lanes_truncate SELECT g, 2 FROM generate_series(1, 30) g");

        await Eventually.UntilAsync(() => log.Calls.Count == 61, "every change is delivered");
        var calls = log.Calls.ToList();
        var truncate = calls.FindIndex(c => c.Kind == nameof(ChangeKind.Truncate));
        calls.Take(truncate).Should().HaveCount(30).And.OnlyContain(c => c.Version == 1);
        calls.Skip(truncate + 1).Should().HaveCount(30).And.OnlyContain(c => c.Version == 2);
    }

    [Fact]
    public async Task An_update_of_the_primary_key_waits_for_the_changes_before_it()
    {
        var log = new LaneLog();
        await using var host = await (await CreateAsync<LaneHandler>("lanes_rekey", log)).StartAsync();

        await db.ExecuteAsync("INSERT INTO lanes_rekey SELECT g, 1 FROM generate_series(1, 20) g");
        await db.ExecuteAsync("UPDATE lanes_rekey SET id = 100, version = 2 WHERE id = 1");
        await db.ExecuteAsync("UPDATE lanes_rekey SET version = 3 WHERE id = 100");

        await Eventually.UntilAsync(() => log.Calls.Count == 22, "every change is delivered");
        var calls = log.Calls.ToList();
        calls.FindIndex(c => c.Id == 100 && c.Version == 2).Should().Be(20, "the key update runs after all 20 inserts");
        calls[^1].Should().Be((100L, 3, nameof(ChangeKind.Update)));
    }

    [Fact]
    public async Task Under_DeadLetter_a_poison_row_on_one_lane_is_moved_aside_and_every_other_change_is_delivered()
    {
        var log = new LaneLog { HoldId = 7 };
        await db.ExecuteAsync("CREATE TABLE lanes_poison (id bigint PRIMARY KEY, version int NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<LaneItem, PoisonLaneHandler>("lanes_poison"),
            o =>
            {
                o.ConsumerName = "lanes_poison";
                o.DeliveryLanes = 4;
                o.FailurePolicy = FailurePolicy.DeadLetter;
                o.Retry.MaxAttempts = 2;
            },
            services: s => s.AddSingleton(log)).StartAsync();

        await db.ExecuteAsync("INSERT INTO lanes_poison SELECT g, 1 FROM generate_series(1, 30) g");
        await db.ExecuteAsync("UPDATE lanes_poison SET version = 2");

        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.CursorPosition == s.HeadPosition && s.LagEvents == 0, "the consumer passes the poison");
        log.Calls.Select(c => c.Id).Distinct().Should().HaveCount(29).And.NotContain(7);
        foreach (var row in log.Calls.GroupBy(c => c.Id))
        {
            row.Select(c => c.Version).Should().Equal([1, 2]);
        }

        (await host.Consumer.GetDeadLettersAsync()).Select(d => d.Error).Should().HaveCount(2).And.OnlyContain(e => e.Contains("poison row 7"));
    }

    [Fact]
    public async Task A_handler_asking_for_the_transaction_with_lanes_blocks_with_an_error_that_names_the_option()
    {
        await using var host = await (await CreateAsync<TransactionalLaneHandler>("lanes_tx", new LaneLog())).StartAsync();
        await db.ExecuteAsync("INSERT INTO lanes_tx VALUES (1, 1)");

        var status = await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.Blocked is not null, "the event blocks");
        status.Blocked!.LastError.Should().Contain("DeliveryLanes");
    }

    [Fact]
    public async Task Lanes_with_a_batch_handler_fail_at_start()
    {
        await db.ExecuteAsync("CREATE TABLE lanes_batch (id bigint PRIMARY KEY, version int NOT NULL)");
        await using var host = ConsumerHost.Create(db.ConnectionString, b => b.AddBatchHandler<LaneBatchHandler>("lanes_batch"),
            o =>
            {
                o.ConsumerName = "lanes_batch";
                o.DeliveryLanes = 4;
            });

        var start = () => host.StartAsync();
        await start.Should().ThrowAsync<PgEventsException>().WithMessage("*DeliveryLanes is 4, but batch handlers are registered*");
    }
}
