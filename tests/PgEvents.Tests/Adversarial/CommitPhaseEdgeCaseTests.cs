using Npgsql;
using PgEvents.Tests.Infrastructure;
using static PgEvents.Tests.Adversarial.Adversary;
using static PgEvents.Tests.Infrastructure.Interleaving;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Commit-phase edge cases that the design claims to handle: writes made at commit time by user
/// deferred triggers queued after the position trigger, writers killed in their commit phase, the
/// reader's own connection killed while it waits, and PL/pgSQL exception blocks.
/// </summary>
public sealed class CommitPhaseEdgeCaseTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("edges", async () =>
    {
        var schema = await OrderingTable.CreateAsync(db);
        await db.ExecuteAsync(
            $$"""
            -- A deferred user trigger that, at commit, waits at a gate and then writes the tracked
            -- table with what it reads from it (a value another transaction may have committed meanwhile).
            CREATE TABLE late_writes (id int PRIMARY KEY, copy_of int NOT NULL);
            CREATE FUNCTION late_write() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_advisory_xact_lock({{OrderingTable.GateLock + 1}});
                INSERT INTO items SELECT NEW.id, 'late saw ' || coalesce((SELECT value FROM items WHERE id = NEW.copy_of), 'nothing');
                RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER late_write AFTER INSERT ON late_writes
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION late_write();
            CREATE FUNCTION write_and_fail(p_id int) RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                BEGIN
                    INSERT INTO items VALUES (p_id, 'inside exception block');
                    RAISE EXCEPTION 'undo';
                EXCEPTION WHEN raise_exception THEN
                    NULL;
                END;
            END $$;
            """);
        return schema;
    });

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<LogDrain> FreshDrainAsync() => LogDrain.CaughtUpAsync(db.DataSource, _schema);

    private async Task<NpgsqlConnection> OpenAsync() => await db.DataSource.OpenConnectionAsync();

    [Fact]
    public async Task A_tracked_write_made_at_commit_by_a_deferred_trigger_queued_after_the_position_sorts_after_what_it_read()
    {
        var drain = await FreshDrainAsync();
        await using var gateKeeper = await OpenAsync();
        await using var late = await OpenAsync();
        await ExecAsync(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({OrderingTable.GateLock + 1})");

        // The first tracked write queues the position trigger; the late_writes row queues the user
        // trigger after it. At COMMIT the position is taken, then the user trigger waits at the gate.
        await ExecAsync(late, "BEGIN; INSERT INTO items VALUES (100, 'late first'); INSERT INTO late_writes VALUES (101, 102)");
        var commit = ExecAsync(late, "COMMIT");
        await ReleasingOnFailureAsync([gateKeeper], [commit], async () =>
        {
            await WaitingOnLockAsync(db, late.ProcessID);
            await db.ExecuteAsync("INSERT INTO items VALUES (102, 'committed meanwhile')");
            (await drain.ReadOnceAsync()).Events.Should().BeEmpty("the late transaction took an earlier position and can still commit");
        });

        await ExecAsync(gateKeeper, "COMMIT");
        await commit;

        // Its commit-time write read the other transaction's row, so it must come after it.
        Labels(await drain.DrainAsync()).Should().Equal("Insert:committed meanwhile", "Insert:late first", "Insert:late saw committed meanwhile");
    }

    [Fact]
    public async Task A_writer_terminated_in_its_commit_phase_is_never_delivered_and_its_position_is_passed_over()
    {
        var drain = await FreshDrainAsync();
        await using var gateKeeper = await OpenAsync();
        var victim = await OpenAsync();
        await ExecAsync(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");
        await ExecAsync(victim, "BEGIN; INSERT INTO items VALUES (200, 'killed'); INSERT INTO gate (action) VALUES ('wait')");
        var pid = victim.ProcessID;
        var commit = ExecAsync(victim, "COMMIT");
        await ReleasingOnFailureAsync([gateKeeper], [commit], async () =>
        {
            await OrderingTable.WaitUntilBlockedAtGateAsync(db);
            await db.ExecuteAsync("INSERT INTO items VALUES (201, 'after')");
            (await drain.ReadOnceAsync()).Events.Should().BeEmpty();

            var waiting = drain.WaitForPendingHoleAsync(TimeSpan.FromSeconds(20));
            await db.ExecuteAsync("SELECT pg_terminate_backend(@pid)", ("pid", pid));
            await commit.ContinueWith(_ => { }, TaskScheduler.Default);
            await waiting;
        });

        commit.IsFaulted.Should().BeTrue("the commit was killed");
        await victim.DisposeAsync();
        await ExecAsync(gateKeeper, "COMMIT");
        Labels(await drain.DrainAsync()).Should().Equal("Insert:after");
    }

    [Fact]
    public async Task Killing_the_readers_connection_while_it_waits_on_a_holder_never_makes_it_skip_that_holder()
    {
        var drain = await FreshDrainAsync();
        await using var gateKeeper = await OpenAsync();
        await using var slow = await OpenAsync();
        await ExecAsync(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");
        await ExecAsync(slow, "BEGIN; INSERT INTO items VALUES (300, 'slow'); INSERT INTO gate (action) VALUES ('wait')");
        var commit = ExecAsync(slow, "COMMIT");
        await ReleasingOnFailureAsync([gateKeeper], [commit], async () =>
        {
            await OrderingTable.WaitUntilBlockedAtGateAsync(db);
            await db.ExecuteAsync("INSERT INTO items VALUES (301, 'fast')");
            (await drain.ReadOnceAsync()).Events.Should().BeEmpty();

            var waiting = drain.WaitForPendingHoleAsync(TimeSpan.FromSeconds(20));
            await Eventually.UntilAsync(async () => await db.ScalarAsync<long>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND mode = 'ShareLock'") > 0, "the reader should wait");
            await db.ExecuteAsync(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND mode = 'ShareLock'");
            var wait = () => waiting;
            await wait.Should().ThrowAsync<Exception>("its connection was killed");

            for (var read = 0; read < 3; read++)
            {
                (await drain.ReadOnceAsync()).Events.Should().BeEmpty("the slow holder can still commit");
            }
        });

        await ExecAsync(gateKeeper, "COMMIT");
        await commit;
        Labels(await drain.DrainAsync()).Should().Equal("Insert:slow", "Insert:fast");
    }

    [Fact]
    public async Task A_tracked_write_undone_by_a_plpgsql_exception_block_in_an_immediate_transaction_is_never_delivered_and_never_stalls()
    {
        var drain = await FreshDrainAsync();
        await using var writer = await OpenAsync();
        await ExecAsync(writer, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE; SELECT write_and_fail(400)");
        await db.ExecuteAsync("INSERT INTO items VALUES (401, 'other')");

        // The exception block took a position and its lock and rolled both back.
        Labels((await drain.ReadOnceAsync()).Events).Should().Equal("Insert:other");
        await ExecAsync(writer, "INSERT INTO items VALUES (402, 'kept'); SELECT write_and_fail(403); COMMIT");
        Labels(await drain.DrainAsync()).Should().Equal("Insert:kept");
    }
}
