using Npgsql;
using PgEvents.Tests.Infrastructure;
using static PgEvents.Tests.Adversarial.Adversary;
using static PgEvents.Tests.Infrastructure.Interleaving;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// The reader waits for a hole's holders by taking a shared lock on each holder's commit-lock key in
/// turn, in one statement, and keeps every shared lock it got until that statement ends. A holder
/// that took its position inside a savepoint (constraints IMMEDIATE) and rolled the savepoint back
/// released its key while still open; the reader then holds that key shared while it waits for the
/// next holder, and the open transaction needs the key exclusively again for its next position.
/// The application's statements must not wait for, time out on, or deadlock with the reader.
/// </summary>
public sealed class ReaderWaitInterferenceTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;
    private static int _nextId = 1000;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("reader-wait", () => OrderingTable.CreateAsync(db));

    public Task DisposeAsync() => Task.CompletedTask;

    private static int NextId() => Interlocked.Increment(ref _nextId);

    private async Task<NpgsqlConnection> OpenAsync() => await db.DataSource.OpenConnectionAsync();

    private Task<LogDrain> FreshDrainAsync() => LogDrain.CaughtUpAsync(db.DataSource, _schema);

    /// <summary>Waits until the reader's backend waits for the commit lock of <paramref name="xid32"/>.</summary>
    private Task ReaderWaitsForAsync(uint xid32) =>
        Eventually.UntilAsync(async () => await db.ScalarAsync<long>(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND mode = 'ShareLock' AND objid::bigint = @xid",
                ("xid", (long)xid32)) > 0,
            $"the reader should wait for holder {xid32}");

    [Fact]
    public async Task A_writer_with_lock_timeout_that_retakes_its_position_after_a_rolled_back_savepoint_is_not_failed_by_the_reader()
    {
        for (var attempt = 0; ; attempt++)
        {
            var drain = await FreshDrainAsync();
            await using var gateKeeper = await OpenAsync();
            await using var x = await OpenAsync();
            await using var y = await OpenAsync();
            await ExecAsync(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");

            // x: constraints immediate, its first tracked write inside a savepoint takes position
            // and commit lock inside that savepoint.
            await ExecAsync(x, $"BEGIN; SET CONSTRAINTS ALL IMMEDIATE; SAVEPOINT s; INSERT INTO items VALUES ({NextId()}, 'x in savepoint')");
            var xid = await Xid32Async(x);

            // y: in its commit phase, held at the gate after taking its position.
            await ExecAsync(y, $"BEGIN; INSERT INTO items VALUES ({NextId()}, 'y'); INSERT INTO gate (action) VALUES ('wait')");
            var yid = await Xid32Async(y);
            var yCommit = ExecAsync(y, "COMMIT");
            await OrderingTable.WaitUntilBlockedAtGateAsync(db);

            await db.ExecuteAsync($"INSERT INTO items VALUES ({NextId()}, 'c')");
            var batch = await drain.ReadOnceAsync();
            batch.Events.Should().BeEmpty();
            var holders = batch.WaitingOn!.Holders;
            holders.Should().Contain([xid, yid]);

            if (holders.ToList().IndexOf(xid) > holders.ToList().IndexOf(yid))
            {
                // The reader would wait for y first; this interleaving needs x first. Start over.
                await ExecAsync(x, "ROLLBACK");
                await ExecAsync(gateKeeper, "COMMIT");
                await yCommit;
                attempt.Should().BeLessThan(20, "pg_locks order should put x first in some attempt");
                continue;
            }

            var readerWait = drain.WaitForPendingHoleAsync(TimeSpan.FromSeconds(20));
            Task? xWrite = null;
            await ReleasingOnFailureAsync([gateKeeper, x], [yCommit, readerWait], async () =>
            {
                await ReaderWaitsForAsync(xid);
                await ExecAsync(x, "ROLLBACK TO s");
                await ReaderWaitsForAsync(yid);

                // x carries on; its next tracked write takes a position again (constraints are still
                // immediate), which needs its commit lock key exclusively.
                await ExecAsync(x, "SET lock_timeout = '500ms'");
                xWrite = ExecAsync(x, $"INSERT INTO items VALUES ({NextId()}, 'x after savepoint')");
                var finished = await Task.WhenAny(xWrite, Task.Delay(TimeSpan.FromSeconds(5)));

                // Observed: 55P03 "canceling statement due to lock timeout" (the INSERT waits on the
                // reader's shared lock on x's own commit-lock key, which the reader keeps while it waits for y).
                finished.Should().BeSameAs(xWrite, "the application's INSERT must not wait for the reader");
                await xWrite;
            });

            await ExecAsync(x, "COMMIT");
            await ExecAsync(gateKeeper, "COMMIT");
            await yCommit;
            await readerWait;
            return;
        }
    }

    [Fact]
    public async Task A_reader_waiting_on_holders_never_closes_a_deadlock_that_aborts_an_application_transaction()
    {
        // Same as above, except that y's commit phase waits (deferred foreign key) for a row lock that
        // x holds: y waits for x, x for the reader's shared lock, the reader for y.
        await db.ExecuteAsync("INSERT INTO parents VALUES (1) ON CONFLICT DO NOTHING");
        for (var attempt = 0; ; attempt++)
        {
            var drain = await FreshDrainAsync();
            await using var x = await OpenAsync();
            await using var y = await OpenAsync();

            await ExecAsync(x, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE; SELECT * FROM parents WHERE id = 1 FOR UPDATE; " +
                               $"SAVEPOINT s; INSERT INTO items VALUES ({NextId()}, 'x in savepoint')");
            var xid = await Xid32Async(x);
            await ExecAsync(y, $"BEGIN; INSERT INTO items VALUES ({NextId()}, 'y'); INSERT INTO children VALUES ({NextId()}, 1)");
            var yid = await Xid32Async(y);
            var yCommit = ExecAsync(y, "COMMIT");
            await WaitingOnLockAsync(db, y.ProcessID);

            await db.ExecuteAsync($"INSERT INTO items VALUES ({NextId()}, 'c')");
            var batch = await drain.ReadOnceAsync();
            batch.Events.Should().BeEmpty();
            var holders = batch.WaitingOn!.Holders.ToList();
            holders.Should().Contain([xid, yid]);
            if (holders.IndexOf(xid) > holders.IndexOf(yid))
            {
                await ExecAsync(x, "ROLLBACK");
                await yCommit;
                attempt.Should().BeLessThan(20, "pg_locks order should put x first in some attempt");
                continue;
            }

            var readerWait = drain.WaitForPendingHoleAsync(TimeSpan.FromSeconds(20));
            Exception? xFailure = null;
            Exception? yFailure = null;
            await ReleasingOnFailureAsync([x], [yCommit, readerWait], async () =>
            {
                await ReaderWaitsForAsync(xid);
                await ExecAsync(x, "ROLLBACK TO s");
                await ReaderWaitsForAsync(yid);
                try
                {
                    await ExecAsync(x, $"INSERT INTO items VALUES ({NextId()}, 'x after savepoint')");
                    await ExecAsync(x, "COMMIT");
                }
                catch (PostgresException e)
                {
                    xFailure = e;
                    await ExecAsync(x, "ROLLBACK");
                }

                try
                {
                    await yCommit;
                }
                catch (PostgresException e)
                {
                    yFailure = e;
                }

                await readerWait;
            });

            // Observed: one of x and y fails with 40P01 "deadlock detected" (usually y, at COMMIT).
            xFailure.Should().BeNull("x only did ordinary writes");
            yFailure.Should().BeNull("y only committed ordinary writes");
            return;
        }
    }
}
