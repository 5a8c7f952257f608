using PgEvents.Tests.Infrastructure;
using static PgEvents.Tests.Adversarial.Adversary;
using static PgEvents.Tests.Infrastructure.Interleaving;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Second adversarial pass on the upgrade from schema version 5 to 6: each test installs versions
/// 1 to 5 exactly as that release's installer did, in a PgEvents schema of its own, tracks tables
/// with version 5's track_table, and upgrades with the current installer.
/// </summary>
public sealed class CaptureSecondPassUpgradeTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task A_database_whose_version_5_tracked_both_parents_of_a_multiply_inheriting_child_upgrades()
    {
        // Version 5 captured no children, so tracking both parents was fine. Version 6's upgrade
        // tracks each again and track_table raises 55000 for the second parent: the whole upgrade
        // fails with a PostgresException and no consumer can start.
        var schema = await db.InstallAsOfVersionAsync(5, "up_multi");
        await db.ExecuteAsync(
            """
            CREATE TABLE um_named (id int PRIMARY KEY, name text);
            CREATE TABLE um_priced (id int, price numeric);
            CREATE TABLE um_products () INHERITS (um_named, um_priced);
            SELECT up_multi.track_table('um_named'), up_multi.track_table('um_priced');
            """);

        var upgrade = () => schema.InstallAsync();

        await upgrade.Should().NotThrowAsync("a database version 5 accepted must be upgradable");
        var drain = new LogDrain(db.DataSource, schema);
        await db.ExecuteAsync("INSERT INTO um_products VALUES (1, 'pen', 2.5)");
        (await drain.DrainAsync()).Where(e => e.Kind == ChangeKind.Insert).Should().ContainSingle("the row is logged as part of one tracked table");
    }

    [Fact]
    public async Task A_version_5_transaction_open_across_the_upgrade_commits()
    {
        var schema = await db.InstallAsOfVersionAsync(5, "up_open");
        await db.ExecuteAsync(
            """
            CREATE TABLE uo_orders (id int PRIMARY KEY, label text);
            SELECT up_open.track_table('uo_orders');
            """);
        await using var writer = await db.DataSource.OpenConnectionAsync();
        await ExecAsync(writer, "BEGIN; INSERT INTO uo_orders VALUES (1, 'written by version 5')");
        var writerPid = writer.ProcessID;
        Task upgrade = Task.CompletedTask;
        var pending = new List<Task>();

        await ReleasingOnFailureAsync([writer], pending, async () =>
        {
            upgrade = schema.InstallAsync();
            pending.Add(upgrade);

            // The upgrade's script first adds a column to settings (ACCESS EXCLUSIVE, held), then
            // waits for the writer's lock on events. The writer's commit reads settings (the NOTIFY
            // channel) and waits for the upgrade: a deadlock, and the application's COMMIT fails.
            await Eventually.UntilAsync(async () => await db.ScalarAsync<long>(
                """
                SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE NOT l.granted AND a.datname = current_database() AND l.pid <> @writer
                """, ("writer", writerPid)) > 0, "the upgrade waits for the open version 5 writer");

            var commit = () => ExecAsync(writer, "COMMIT");
            await commit.Should().NotThrowAsync("upgrading the schema must never make the application's commit fail");
            await upgrade;
        });
        await upgrade.ContinueWith(_ => { }, TaskScheduler.Default);

        var drain = new LogDrain(db.DataSource, schema);
        await db.ExecuteAsync("INSERT INTO uo_orders VALUES (2, 'written by version 6')");
        var replica = new ReplicaModel(new TableName("public", "uo_orders"), ["id"], ["id", "label"]);
        replica.ApplyAll(await drain.DrainAsync());
        await replica.ShouldEqualSourceAsync(db, "both transactions committed");
    }

    [Fact]
    public async Task Partitioned_and_oddly_named_tables_tracked_by_version_5_are_fully_captured_after_the_upgrade()
    {
        var schema = await db.InstallAsOfVersionAsync(5, "up_odd");
        await db.ExecuteAsync(
            """
            CREATE SCHEMA "My Schema";
            CREATE TABLE "My Schema"."Order Items" (id int PRIMARY KEY, "Qty" int);
            CREATE TABLE "weird""name" (id int PRIMARY KEY, r text, pgevents_removed text);
            CREATE TABLE "!pgevents_insert" (id int PRIMARY KEY, v text);
            CREATE TABLE uq_parts (id int, k text, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
            CREATE TABLE uq_parts_a PARTITION OF uq_parts FOR VALUES IN ('a');
            CREATE TABLE uq_parts_b PARTITION OF uq_parts FOR VALUES IN ('b') PARTITION BY LIST (id);
            CREATE TABLE uq_parts_b1 PARTITION OF uq_parts_b DEFAULT;
            SELECT up_odd.track_table('"My Schema"."Order Items"'), up_odd.track_table('"weird""name"'),
                   up_odd.track_table('"!pgevents_insert"'), up_odd.track_table('uq_parts');
            INSERT INTO uq_parts VALUES (1, 'a', 'before'), (2, 'b', 'before');
            """);

        await schema.InstallAsync();
        var tables = new[]
        {
            new TableName("My Schema", "Order Items"), new TableName("public", "weird\"name"),
            new TableName("public", "!pgevents_insert"), new TableName("public", "uq_parts"),
        };
        await schema.EnsureCapturedAsync(tables);
        var drain = new LogDrain(db.DataSource, schema);
        var parts = new ReplicaModel(new TableName("public", "uq_parts"), ["id", "k"], ["id", "k", "v"]);
        parts.ApplyAll(await drain.DrainAsync());
        await db.ExecuteAsync(
            """
            INSERT INTO "My Schema"."Order Items" VALUES (1, 2);
            INSERT INTO "weird""name" VALUES (1, 'rr', 'rem'), (2, 'ss', 'x');
            INSERT INTO "!pgevents_insert" VALUES (1, 'x');
            INSERT INTO uq_parts VALUES (3, 'a', 'after'), (4, 'b', 'after');
            UPDATE uq_parts SET v = 'moved', k = 'b' WHERE id = 1;
            TRUNCATE uq_parts_a; TRUNCATE uq_parts_b1;
            INSERT INTO uq_parts VALUES (5, 'a', 'last');
            DELETE FROM "weird""name" WHERE id = 2;
            """);

        var events = await drain.DrainAsync();
        parts.ApplyAll(events);
        await parts.ShouldEqualSourceAsync(db, "every change of the partitions arrives under uq_parts");
        var weird = new ReplicaModel(new TableName("public", "weird\"name"), ["id"], ["id", "r", "pgevents_removed"]);
        weird.ApplyAll(events);
        await weird.ShouldEqualSourceAsync(db, "whole rows, whatever the column names");
        events.Select(e => e.Table).Should().Contain(["Order Items", "!pgevents_insert"]);
        (await db.ScalarAsync<long>("SELECT count(*) FROM pg_trigger WHERE tgfoid IN ('up_odd.capture_insert'::regproc, 'up_odd.capture_delete'::regproc, 'up_odd.capture_update'::regproc, 'up_odd.capture_truncate'::regproc)"))
            .Should().Be(0, "no version 5 trigger is left");
    }
}
