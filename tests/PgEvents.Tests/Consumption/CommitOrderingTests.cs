using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// The five ordering properties of the log, each forced by driving several connections step by
/// step. The gate table's deferred trigger runs after the PgEvents commit trigger, so a test can
/// hold a transaction between "position taken" and "commit visible", or fail it right there.
/// </summary>
public sealed class CommitOrderingTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("ordering", () => OrderingTable.CreateAsync(db));

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<LogDrain> FreshDrainAsync() => LogDrain.CaughtUpAsync(db.DataSource, _schema);

    private async Task<NpgsqlConnection> OpenAsync() => await db.DataSource.OpenConnectionAsync();

    private async Task<long> LastPositionTakenAsync() =>
        await db.ScalarAsync<long>("SELECT last_value FROM pgevents.position_seq");

    private static IEnumerable<string> Values(IEnumerable<CapturedEvent> events) =>
        events.Select(e => System.Text.Json.JsonDocument.Parse(e.RowJson!).RootElement.GetProperty("value").GetString()!);

    [Fact]
    public async Task A_committed_transaction_whose_position_became_visible_late_is_never_skipped()
    {
        var drain = await FreshDrainAsync();
        await using var holder = await OpenAsync();
        await using var slow = await OpenAsync();
        await using var fast = await OpenAsync();
        await using var holderTx = await holder.BeginTransactionAsync();
        await OrderingTable.ExecuteAsync(holder, $"SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");

        // slow takes its position first, then waits at the gate before its commit becomes visible.
        await OrderingTable.ExecuteAsync(slow, "BEGIN; INSERT INTO items VALUES (1, 'slow'); INSERT INTO gate (action) VALUES ('wait')");
        var slowCommit = OrderingTable.ExecuteAsync(slow, "COMMIT");
        await OrderingTable.WaitUntilBlockedAtGateAsync(db);
        var slowPosition = await LastPositionTakenAsync();

        await OrderingTable.ExecuteAsync(fast, "INSERT INTO items VALUES (2, 'fast')");
        (await LastPositionTakenAsync()).Should().Be(slowPosition + 1, "fast takes the next position but commits first");

        var whileSlowCommits = await drain.ReadOnceAsync();
        whileSlowCommits.Events.Should().BeEmpty("fast's position comes after slow's, which is not visible yet");
        whileSlowCommits.WaitingOn.Should().NotBeNull();
        (await drain.ReadOnceAsync()).Events.Should().BeEmpty("the hole is not skipped while its holder runs, however often one reads");

        await holderTx.CommitAsync();
        await slowCommit;

        Values(await drain.DrainAsync()).Should().Equal("slow", "fast");
    }

    [Fact]
    public async Task Events_of_a_rolled_back_transaction_are_never_delivered()
    {
        var drain = await FreshDrainAsync();
        await using var connection = await OpenAsync();

        await OrderingTable.ExecuteAsync(connection, "BEGIN; INSERT INTO items VALUES (10, 'rolled back'); ROLLBACK");
        await OrderingTable.ExecuteAsync(connection,
            "BEGIN; INSERT INTO items VALUES (11, 'kept'); SAVEPOINT s; INSERT INTO items VALUES (12, 'savepoint rolled back'); ROLLBACK TO s; COMMIT");

        Values(await drain.DrainAsync()).Should().Equal("kept");
    }

    [Fact]
    public async Task A_transaction_failing_during_commit_after_taking_its_position_is_never_delivered_and_does_not_stall_the_log()
    {
        var drain = await FreshDrainAsync();
        await using var failing = await OpenAsync();
        await using var later = await OpenAsync();
        var before = await LastPositionTakenAsync();

        await OrderingTable.ExecuteAsync(failing, "BEGIN; INSERT INTO items VALUES (20, 'fails at commit'); INSERT INTO children VALUES (20, -1)");
        var commit = () => OrderingTable.ExecuteAsync(failing, "COMMIT");
        (await commit.Should().ThrowAsync<PostgresException>()).Which.SqlState.Should().Be(PostgresErrorCodes.ForeignKeyViolation);
        (await LastPositionTakenAsync()).Should().Be(before + 1, "the failed transaction took a position before the foreign key check failed");

        await OrderingTable.ExecuteAsync(later, "INSERT INTO items VALUES (21, 'later')");

        Values(await drain.DrainAsync()).Should().Equal("later");
    }

    [Fact]
    public async Task A_hole_whose_holder_is_still_committing_when_seen_is_skipped_only_after_the_holder_fails()
    {
        var drain = await FreshDrainAsync();
        await using var holder = await OpenAsync();
        await using var doomed = await OpenAsync();
        await using var later = await OpenAsync();
        var holderTx = await holder.BeginTransactionAsync();
        await OrderingTable.ExecuteAsync(holder, $"SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");

        await OrderingTable.ExecuteAsync(doomed, "BEGIN; INSERT INTO items VALUES (30, 'doomed'); INSERT INTO gate (action) VALUES ('wait-then-fail')");
        var doomedCommit = OrderingTable.ExecuteAsync(doomed, "COMMIT");
        await OrderingTable.WaitUntilBlockedAtGateAsync(db);
        await OrderingTable.ExecuteAsync(later, "INSERT INTO items VALUES (31, 'later')");

        (await drain.ReadOnceAsync()).Events.Should().BeEmpty();
        var hole = drain.PendingHole;
        hole.Should().NotBeNull();
        hole!.Holders.Should().NotBeEmpty("the doomed transaction is in its commit phase");

        await holderTx.CommitAsync();
        var failedCommit = () => doomedCommit;
        await failedCommit.Should().ThrowAsync<PostgresException>().WithMessage("*gate refused the commit*");

        Values(await drain.DrainAsync()).Should().Equal("later");
        await holderTx.DisposeAsync();
    }

    [Fact]
    public async Task Events_of_one_transaction_are_delivered_contiguously_in_statement_and_row_order()
    {
        var drain = await FreshDrainAsync();
        await using var first = await OpenAsync();
        await using var second = await OpenAsync();

        await OrderingTable.ExecuteAsync(first, "BEGIN; INSERT INTO items VALUES (40, 'a1')");
        await OrderingTable.ExecuteAsync(second, "BEGIN; INSERT INTO items VALUES (41, 'b1')");
        await OrderingTable.ExecuteAsync(first, "INSERT INTO items SELECT 41 + g, 'a' || (g + 1) FROM generate_series(1, 3) g");
        await OrderingTable.ExecuteAsync(second, "UPDATE items SET value = 'b2' WHERE id = 41");
        await OrderingTable.ExecuteAsync(first, "UPDATE items SET value = 'a5' WHERE id = 40");
        await OrderingTable.ExecuteAsync(second, "INSERT INTO items VALUES (50, 'b3')");
        await OrderingTable.ExecuteAsync(second, "COMMIT");
        await OrderingTable.ExecuteAsync(first, "COMMIT");

        // A batch size of 2 cuts both transactions across reads.
        var smallBatches = new LogDrain(db.DataSource, _schema, batchSize: 2);
        await smallBatches.DrainAsync();
        var expected = new[] { "b1", "b2", "b3", "a1", "a2", "a3", "a4", "a5" };
        Values(await drain.DrainAsync()).Should().Equal(expected);
        Values(smallBatches.Delivered).TakeLast(8).Should().Equal(expected);
    }

    [Fact]
    public async Task A_transaction_that_wrote_after_another_committed_is_delivered_after_it_even_with_an_older_xid()
    {
        // The interleaving from the design: xid order would deliver Tb's update before Ta's and a
        // replica replaying the log would end with Ta's value instead of Tb's.
        await OrderingTable.ExecuteAsync(await OpenAsync(), "INSERT INTO items VALUES (60, 'initial')");
        var drain = await FreshDrainAsync();
        await using var ta = await OpenAsync();
        await using var tb = await OpenAsync();
        await using var tc = await OpenAsync();

        await OrderingTable.ExecuteAsync(tb, "BEGIN; SELECT pg_current_xact_id()");
        await OrderingTable.ExecuteAsync(tc, "BEGIN; SELECT pg_current_xact_id()");
        await OrderingTable.ExecuteAsync(ta, "BEGIN; UPDATE items SET value = 'from Ta' WHERE id = 60; COMMIT");
        await OrderingTable.ExecuteAsync(tb, "UPDATE items SET value = 'from Tb' WHERE id = 60; COMMIT");

        var events = await drain.DrainAsync();
        events.Should().HaveCount(2);
        events[0].TransactionId.Should().BeGreaterThan(events[1].TransactionId, "Tb took its xid before Ta");
        Values(events).Should().Equal("from Ta", "from Tb");
        await OrderingTable.ExecuteAsync(tc, "ROLLBACK");
    }

    [Fact]
    public async Task An_unrelated_long_running_transaction_does_not_hold_back_later_commits()
    {
        var drain = await FreshDrainAsync();
        await using var longRunning = await OpenAsync();
        await using var writer = await OpenAsync();

        // The long transaction has an xid and has even written captured rows, but does not commit.
        await OrderingTable.ExecuteAsync(longRunning, "BEGIN; INSERT INTO items VALUES (70, 'long')");
        await OrderingTable.ExecuteAsync(writer, "INSERT INTO items VALUES (71, 'ta')");
        await OrderingTable.ExecuteAsync(writer, "UPDATE items SET value = 'tb' WHERE id = 71");

        Values(await drain.DrainAsync()).Should().Equal("ta", "tb");

        await OrderingTable.ExecuteAsync(longRunning, "COMMIT");
        Values(await drain.DrainAsync()).Should().Equal("long");
    }

    [Fact]
    public async Task Writes_after_constraints_were_forced_immediate_still_commit_in_causal_order()
    {
        // SET CONSTRAINTS ALL IMMEDIATE fires the commit trigger early; the next capture must take
        // a new position at commit, or the transaction would sort before one it read from.
        var drain = await FreshDrainAsync();
        await using var early = await OpenAsync();
        await using var other = await OpenAsync();

        await OrderingTable.ExecuteAsync(early, "BEGIN; INSERT INTO items VALUES (80, 'early-1'); SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED");
        await OrderingTable.ExecuteAsync(other, "INSERT INTO items VALUES (81, 'other')");
        await OrderingTable.ExecuteAsync(early, "UPDATE items SET value = 'early-2 saw ' || (SELECT value FROM items WHERE id = 81) WHERE id = 80; COMMIT");

        Values(await drain.DrainAsync()).Should().Equal("other", "early-1", "early-2 saw other");
    }
}
