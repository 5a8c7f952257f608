using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;
using PgEvents.Tests.Reliability;

namespace PgEvents.Tests.Lanes;

public sealed record CompositeItem(string A, int B, int Version);

/// <summary>What attack handlers saw: every completed delivery, with its log position.</summary>
public sealed class AttackLog
{
    private int _heldOthers;

    public ConcurrentQueue<(string Key, int Version, string Kind, long Position, long EventId)> Calls { get; } = new();

    public int MaxDelayMs { get; set; }

    public HashSet<long> Poison { get; } = [];

    public long HoldId { get; set; } = long.MinValue;

    public TaskCompletionSource HeldEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Other rows' changes completed while the held row was in its handler.</summary>
    public int HeldOthers => Volatile.Read(ref _heldOthers);

    public int OverrunAt { get; set; } = int.MaxValue;

    public TaskCompletionSource Overran { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task HandleAsync(string key, long id, int version, string kind, long position, long eventId, CancellationToken cancellationToken)
    {
        if (Poison.Contains(id))
        {
            throw new InvalidOperationException($"poison row {id}");
        }

        if (id == HoldId && !Release.Task.IsCompleted)
        {
            HeldEntered.TrySetResult();
            await Release.Task.WaitAsync(cancellationToken);
        }
        else if (HeldEntered.Task.IsCompleted && !Release.Task.IsCompleted && Interlocked.Increment(ref _heldOthers) >= OverrunAt)
        {
            Overran.TrySetResult();
        }

        if (MaxDelayMs > 0)
        {
            await Task.Delay(Random.Shared.Next(MaxDelayMs + 1), cancellationToken);
        }

        Calls.Enqueue((key, version, kind, position, eventId));
    }
}

public sealed class AttackHandler(AttackLog log) : IRowHandler<LaneItem>
{
    public Task HandleAsync(RowChange<LaneItem> change, CancellationToken cancellationToken)
    {
        var row = change.Row ?? change.OldRow;
        return log.HandleAsync(change.Table.Name + ":" + (row?.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"), row?.Id ?? -1, change.Kind == ChangeKind.Delete ? -1 : row?.Version ?? -1,
            change.Kind.ToString(), change.Position, change.EventId, cancellationToken);
    }
}

public sealed class CompositeAttackHandler(AttackLog log) : IRowHandler<CompositeItem>
{
    public Task HandleAsync(RowChange<CompositeItem> change, CancellationToken cancellationToken) =>
        log.HandleAsync(change.Row!.A + "|" + change.Row.B, -1, change.Row.Version, change.Kind.ToString(), change.Position, change.EventId, cancellationToken);
}

/// <summary>Attacks on ordered parallel lanes, on a real server.</summary>
public sealed class LaneAttackTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);

    private ConsumerHost Host<TRow, THandler>(string name, AttackLog log, Action<PgEventsOptions>? configure = null, string? app = null)
        where TRow : class
        where THandler : class, IRowHandler<TRow> =>
        ConsumerHost.Create(app is null ? db.ConnectionString : FaultHelpers.WithApplicationName(db.ConnectionString, app),
            b => b.AddHandler<TRow, THandler>(name),
            o =>
            {
                o.ConsumerName = name;
                o.DeliveryLanes = 8;
                o.BatchSize = 5;
                configure?.Invoke(o);
            },
            services: s => s.AddSingleton(log));

    /// <summary>Runs <paramref name="writers"/> concurrent writers, each bumping random rows' versions.</summary>
    private async Task WriteAsync(string sql, int writers, int updates, int rows)
    {
        await Task.WhenAll(Enumerable.Range(0, writers).Select(async w =>
        {
            var random = new Random(w);
            await using var connection = new NpgsqlConnection(db.ConnectionString);
            await connection.OpenAsync();
            for (var i = 0; i < updates; i++)
            {
                await using var command = new NpgsqlCommand(sql, connection);
                command.Parameters.AddWithValue("id", (long)random.Next(1, rows + 1));
                await command.ExecuteNonQueryAsync();
            }
        }));
    }

    private async Task<Dictionary<string, int>> FinalVersionsAsync(string sql)
    {
        var final = new Dictionary<string, int>();
        await using var command = db.DataSource.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            final[reader.GetString(0)] = reader.GetInt32(1);
        }

        return final;
    }

    /// <summary>
    /// For every row, its first deliveries of each version are exactly 0..final in order: a redelivery
    /// may repeat a version already seen, never skip one or go back before it was first seen.
    /// </summary>
    private static void ShouldHoldPerRowOrder(IEnumerable<(string Key, int Version)> calls, Dictionary<string, int> final)
    {
        var byRow = calls.GroupBy(c => c.Key).ToDictionary(g => g.Key, g => g.Select(c => c.Version).ToList());
        byRow.Keys.Should().BeEquivalentTo(final.Keys);
        foreach (var (key, versions) in byRow)
        {
            var seen = new HashSet<int>();
            var firsts = versions.Where(seen.Add).ToList();
            firsts.Should().Equal(Enumerable.Range(0, final[key] + 1), $"row {key} sees each version, in commit order (saw {string.Join(",", versions)})");
        }
    }

    private async Task<(long Position, long EventId)> SavedCursorAsync(string name)
    {
        await using var command = db.DataSource.CreateCommand($"SELECT position, event_id FROM log_{name}.consumers WHERE name = '{name}'");
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    private async Task<List<(long Position, long EventId)>> LogEventsAsync(string name)
    {
        var events = new List<(long, long)>();
        await using var command = db.DataSource.CreateCommand(
            $"SELECT t.position, e.event_id FROM log_{name}.transactions t JOIN log_{name}.events e ON e.xid = t.xid ORDER BY 1, 2");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            events.Add((reader.GetInt64(0), reader.GetInt64(1)));
        }

        return events;
    }

    private static Task CaughtUpAsync(ConsumerHost host, string because) =>
        Eventually.UntilAsync(
            async () =>
            {
                try
                {
                    return await host.Consumer.GetStatusAsync();
                }
                catch (NpgsqlException)
                {
                    // A pooled status connection killed with the consumer's: ask again.
                    return null;
                }
            },
            s => s is not null && s.CursorPosition == s.HeadPosition && s.LagEvents == 0, because, Wait);

    [Fact]
    public async Task Concurrent_writers_on_overlapping_rows_with_a_stop_a_restart_and_a_killed_connection_keep_every_rows_order()
    {
        const string name = "attack_overlap";
        const int rows = 12;
        await db.ExecuteAsync($"CREATE TABLE {name} (id bigint PRIMARY KEY, version int NOT NULL)");
        var first = new AttackLog { MaxDelayMs = 3 };
        var firstHost = await Host<LaneItem, AttackHandler>(name, first).StartAsync();
        await db.ExecuteAsync($"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, {rows}) g");
        var writing = WriteAsync($"UPDATE {name} SET version = version + 1 WHERE id = @id", writers: 6, updates: 60, rows);

        // Stop mid-run: the saved cursor passes only changes whose handler completed.
        await Eventually.UntilAsync(() => first.Calls.Count >= 60, "the first consumer delivers some changes", Wait);
        await firstHost.DisposeAsync();
        var completed = first.Calls.Select(c => (c.Position, c.EventId)).ToHashSet();
        var cursor = await SavedCursorAsync(name);
        var passed = (await LogEventsAsync(name)).Where(e => e.Position < cursor.Position || (e.Position == cursor.Position && e.EventId <= cursor.EventId));
        passed.Should().OnlyContain(e => completed.Contains(e), "the cursor never passes a change whose handler did not complete");

        // Restart, and kill its connection while lanes are busy.
        var second = new AttackLog { MaxDelayMs = 3 };
        const string app = "attack_overlap_app";
        await using var secondHost = await Host<LaneItem, AttackHandler>(name, second, app: app).StartAsync();
        await Eventually.UntilAsync(() => second.Calls.Count >= 20, "the second consumer delivers some changes", Wait);
        (await FaultHelpers.TerminateAsync(db.ConnectionString, app)).Should().BeGreaterThan(0);
        await writing;

        await CaughtUpAsync(secondHost, "the restarted consumer catches up");
        var final = await FinalVersionsAsync($"SELECT '{name}:' || id, version FROM {name}");
        ShouldHoldPerRowOrder(first.Calls.Concat(second.Calls).Select(c => (c.Key, c.Version)), final);
    }

    [Fact]
    public async Task A_held_row_does_not_let_the_consumer_read_the_log_ahead_without_bound()
    {
        const string name = "attack_bound";
        await db.ExecuteAsync($"CREATE TABLE {name} (id bigint PRIMARY KEY, version int NOT NULL)");
        var log = new AttackLog { HoldId = 1, OverrunAt = 100 };
        await using var host = await Host<LaneItem, AttackHandler>(name, log, o => o.DeliveryLanes = 64).StartAsync();

        await db.ExecuteAsync($"INSERT INTO {name} VALUES (1, 0), (2, 0)");
        await log.HeldEntered.Task.WaitAsync(Wait);

        // 300 transactions on row 2 (another lane, unless it hashes to row 1's): with BatchSize 5
        // the read-ahead is about 5 changes, so far fewer than 100 may complete past the held row.
        for (var i = 1; i <= 300; i++)
        {
            await db.ExecuteAsync($"UPDATE {name} SET version = {i} WHERE id = 2");
        }

        // A negative check has no signal: give the consumer a bounded time to overrun.
        var overran = await Task.WhenAny(log.Overran.Task, Task.Delay(TimeSpan.FromSeconds(3))) == log.Overran.Task;
        overran.Should().BeFalse($"a held row bounds the read-ahead, but {log.HeldOthers} changes completed past it");

        log.Release.SetResult();
        await CaughtUpAsync(host, "everything is delivered once the row is released");
    }

    [Fact]
    public async Task Under_Block_a_failing_row_blocks_the_cursor_and_a_reset_past_it_restarts_the_lanes()
    {
        const string name = "attack_block";
        await db.ExecuteAsync($"CREATE TABLE {name} (id bigint PRIMARY KEY, version int NOT NULL)");
        var log = new AttackLog();
        log.Poison.Add(3);
        await using var host = await Host<LaneItem, AttackHandler>(name, log, o => o.DeliveryLanes = 4).StartAsync();

        await db.ExecuteAsync($"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, 20) g");
        var poison = await db.ScalarAsync<long>($"SELECT max(position) FROM log_{name}.transactions");
        for (var v = 1; v <= 3; v++)
        {
            await db.ExecuteAsync($"UPDATE {name} SET version = {v} WHERE id <> 3");
        }

        var blocked = await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.Blocked is not null, "the poison row blocks", Wait);
        blocked.Blocked!.Position.Should().Be(poison);
        await Eventually.UntilAsync(() => !log.Calls.IsEmpty, "other rows go on past the blocked one", Wait);
        var cursor = await host.Consumer.GetStatusAsync();
        (cursor.CursorPosition < poison || (cursor.CursorPosition == poison && cursor.CursorEventId < blocked.Blocked.EventId))
            .Should().BeTrue($"the cursor ({cursor.CursorPosition}/{cursor.CursorEventId}) never passes the blocked change ({poison}/{blocked.Blocked.EventId})");

        // Skip the poison: the lanes restart after the reset, and new changes are delivered.
        log.Poison.Clear();
        var head = await db.ScalarAsync<long>($"SELECT max(position) FROM log_{name}.transactions");
        await host.Consumer.ResetCursorToPositionAsync(head + 1);
        await db.ExecuteAsync($"UPDATE {name} SET version = 10 WHERE id = 3");
        await Eventually.UntilAsync(() => log.Calls.Any(c => c.Key == name + ":3" && c.Version == 10), "a change after the reset is delivered", Wait);
        var status = await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.Blocked is null && s.CursorPosition == s.HeadPosition, "unblocked, caught up", Wait);
        status.LagEvents.Should().Be(0);
    }

    [Fact]
    public async Task Under_DeadLetter_several_poisons_on_different_lanes_at_once_are_each_moved_aside()
    {
        const string name = "attack_poisons";
        await db.ExecuteAsync($"CREATE TABLE {name} (id bigint PRIMARY KEY, version int NOT NULL)");
        var log = new AttackLog { MaxDelayMs = 2 };
        foreach (var id in new long[] { 2, 5, 9, 13, 17, 21 })
        {
            log.Poison.Add(id);
        }

        await using var host = await Host<LaneItem, AttackHandler>(name, log, o =>
        {
            o.FailurePolicy = FailurePolicy.DeadLetter;
            o.Retry.MaxAttempts = 2;
            o.BatchSize = 50;
        }).StartAsync();

        await db.ExecuteAsync($"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, 24) g");
        await db.ExecuteAsync($"UPDATE {name} SET version = 1");
        await db.ExecuteAsync($"UPDATE {name} SET version = 2");

        await CaughtUpAsync(host, "the consumer passes every poison");
        (await host.Consumer.GetDeadLettersAsync()).Should().HaveCount(18);
        var final = (await FinalVersionsAsync($"SELECT '{name}:' || id, version FROM {name}")).Where(r => !log.Poison.Contains(long.Parse(r.Key.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture))).ToDictionary();
        ShouldHoldPerRowOrder(log.Calls.Select(c => (c.Key, c.Version)), final);
        (await host.Consumer.GetStatusAsync()).Blocked.Should().BeNull();
    }

    [Fact]
    public async Task A_composite_text_key_with_unicode_and_quotes_keeps_every_rows_order_under_concurrent_writers()
    {
        const string name = "attack_composite";
        await db.ExecuteAsync($"CREATE TABLE {name} (a text, b int, version int NOT NULL, PRIMARY KEY (a, b))");
        var log = new AttackLog { MaxDelayMs = 2 };
        await using var host = await Host<CompositeItem, CompositeAttackHandler>(name, log, o => o.DeliveryLanes = 64).StartAsync();

        await db.ExecuteAsync(
            $"""INSERT INTO {name} SELECT k, b, 0 FROM unnest(ARRAY['x', 'x"y', 'it''s', 'ünï€😀', E'a\\b', 'a' || chr(9) || 'b']) k, generate_series(1, 2) b""");
        var keys = await FinalVersionsAsync($"SELECT a || '|' || b, 0 FROM {name}");
        keys.Should().HaveCount(12);
        await WriteAsync(
            $"UPDATE {name} SET version = version + 1 WHERE (a, b) = (SELECT a, b FROM {name} ORDER BY a, b OFFSET (@id - 1) LIMIT 1)",
            writers: 5, updates: 40, rows: 12);

        await CaughtUpAsync(host, "every change is delivered");
        ShouldHoldPerRowOrder(log.Calls.Select(c => (c.Key, c.Version)), await FinalVersionsAsync($"SELECT a || '|' || b, version FROM {name}"));
    }

    [Fact]
    public async Task A_table_without_a_primary_key_deletes_truncates_and_key_updates_under_concurrency_keep_their_order()
    {
        const string keyed = "attack_mixed";
        const string keyless = "attack_mixed_nopk";
        await db.ExecuteAsync($"CREATE TABLE {keyed} (id bigint PRIMARY KEY, version int NOT NULL)");
        await db.ExecuteAsync($"CREATE TABLE {keyless} (id bigint, version int NOT NULL)");
        var log = new AttackLog { MaxDelayMs = 2 };
        await using var host = await ConsumerHost.Create(db.ConnectionString,
            b => b.AddHandler<LaneItem, AttackHandler>(keyed).AddHandler<LaneItem, AttackHandler>(keyless),
            o =>
            {
                o.ConsumerName = keyed;
                o.DeliveryLanes = 8;
                o.BatchSize = 5;
                o.AllowTablesWithoutPrimaryKey = true;
            },
            services: s => s.AddSingleton(log)).StartAsync();

        await db.ExecuteAsync($"INSERT INTO {keyed} SELECT g, 0 FROM generate_series(1, 10) g");
        await db.ExecuteAsync($"INSERT INTO {keyless} SELECT g, 0 FROM generate_series(1, 3) g");
        var writers = WriteAsync($"UPDATE {keyed} SET version = version + 1 WHERE id = @id", writers: 3, updates: 40, rows: 10);
        var keylessWriter = WriteAsync($"UPDATE {keyless} SET version = version + 1 WHERE id = @id", writers: 1, updates: 30, rows: 3);
        await Task.WhenAll(writers, keylessWriter);

        // A row deleted and re-inserted, and a key moved, while others are written.
        await db.ExecuteAsync($"DELETE FROM {keyed} WHERE id = 1");
        await db.ExecuteAsync($"INSERT INTO {keyed} VALUES (1, 1000)");
        await db.ExecuteAsync($"UPDATE {keyed} SET id = 200, version = 2000 WHERE id = 2");
        await db.ExecuteAsync($"UPDATE {keyed} SET version = 2001 WHERE id = 200");

        await CaughtUpAsync(host, "every change is delivered");
        var keyedCalls = log.Calls.Where(c => c.Kind != nameof(ChangeKind.Truncate)).ToList();

        // Row 1: its versions up to its delete, then the delete, then the re-insert.
        var row1 = keyedCalls.Where(c => c.Key == keyed + ":1").Select(c => c.Version).ToList();
        row1.TakeLast(2).Should().Equal(-1, 1000);
        row1.SkipLast(2).Should().BeInAscendingOrder();
        keyedCalls.Where(c => c.Key == keyed + ":200").Select(c => c.Version).Should().Equal(2000, 2001);
        keyedCalls.Where(c => c.Key == keyed + ":2").Select(c => c.Version).Should().BeInAscendingOrder();

        // The keyless table's changes are barriers: every change before one completes before it, every change after it starts after.
        var calls = log.Calls.ToList();
        calls.Should().HaveCount((await LogEventsAsync(keyed)).Count, "each change is delivered once");
        for (var i = 0; i < calls.Count; i++)
        {
            if (calls[i].Key.StartsWith(keyless + ":", StringComparison.Ordinal))
            {
                var at = (calls[i].Position, calls[i].EventId);
                calls.Take(i).Should().OnlyContain(c => c.Position < at.Position || (c.Position == at.Position && c.EventId < at.EventId), $"before barrier {at}");
                calls.Skip(i + 1).Should().OnlyContain(c => c.Position > at.Position || (c.Position == at.Position && c.EventId > at.EventId), $"after barrier {at}");
            }
        }
    }
}
