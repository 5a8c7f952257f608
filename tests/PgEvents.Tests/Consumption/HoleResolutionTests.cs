using System.Text.Json;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// The exact rule for a missing position: it is passed over only when no transaction that took it
/// can still commit, whatever its xid, and only transactions in their commit phase are waited for.
/// Each case is forced step by step on real connections.
/// </summary>
public sealed class HoleResolutionTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("holes", async () =>
    {
        var schema = await OrderingTable.CreateAsync(db);
        await db.ExecuteAsync(
            """
            CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
            CREATE TABLE orders (id int PRIMARY KEY,
                customer_id int REFERENCES customers DEFERRABLE INITIALLY DEFERRED, label text NOT NULL);
            CREATE TABLE untracked (id serial PRIMARY KEY, note text);
            INSERT INTO customers VALUES (1, 'one');
            """);
        await schema.TrackTableAsync(new TableName("public", "orders"));
        return schema;
    });

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<LogDrain> FreshDrainAsync() => LogDrain.CaughtUpAsync(db.DataSource, _schema);

    private async Task<NpgsqlConnection> OpenAsync() => await db.DataSource.OpenConnectionAsync();

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static IEnumerable<string> Labels(IEnumerable<CapturedEvent> events) =>
        events.Select(e =>
        {
            var row = JsonDocument.Parse(e.RowJson!).RootElement;
            return $"{e.Kind}:{(row.TryGetProperty("label", out var label) ? label.GetString() : row.GetProperty("value").GetString())}";
        });

    [Fact]
    public async Task A_transaction_whose_deferred_foreign_key_waits_on_a_row_lock_after_taking_its_position_is_delivered_not_skipped()
    {
        // The interleaving from the issue: B takes its position at pre-commit, then its deferred FK
        // check waits for X's row lock; A commits after B took its position, with an older xid, so B
        // is not even in the snapshot's xip list (its xid is at or above xmax).
        var drain = await FreshDrainAsync();
        await using var a = await OpenAsync();
        await using var b = await OpenAsync();
        await using var x = await OpenAsync();

        await OrderingTable.ExecuteAsync(a, "BEGIN; INSERT INTO orders VALUES (1, NULL, 'A')");
        await OrderingTable.ExecuteAsync(x, "BEGIN; SELECT * FROM customers WHERE id = 1 FOR UPDATE");
        await OrderingTable.ExecuteAsync(b, "BEGIN; INSERT INTO orders VALUES (2, NULL, 'B'); INSERT INTO orders VALUES (3, 1, 'B2')");
        var bCommit = OrderingTable.ExecuteAsync(b, "COMMIT");
        await Interleaving.ReleasingOnFailureAsync([x], [bCommit], async () =>
        {
            await Interleaving.WaitingOnLockAsync(db, b.ProcessID);
            await OrderingTable.ExecuteAsync(a, "COMMIT");

            for (var read = 0; read < 3; read++)
            {
                var batch = await drain.ReadOnceAsync();
                batch.Events.Should().BeEmpty("B holds the position before A's and can still commit");
                batch.WaitingOn!.Holders.Should().NotBeEmpty("B is in its commit phase");
            }

            await drain.WaitForPendingHoleAsync(TimeSpan.FromMilliseconds(50));
            (await drain.ReadOnceAsync()).Events.Should().BeEmpty("a bounded wait for the holder changes nothing while it runs");
        });

        await OrderingTable.ExecuteAsync(x, "COMMIT");
        await bCommit;

        Labels(await drain.DrainAsync()).Should().Equal("Insert:B", "Insert:B2", "Insert:A");
    }

    [Fact]
    public async Task The_real_consumer_delivers_a_holder_delayed_by_a_deferred_foreign_key_in_commit_order()
    {
        // The consumer gets a log of its own (ConsumerHost), tracking the table beside the class's log.
        var consumerName = "fk_" + Guid.NewGuid().ToString("N")[..8];
        await using var host = await ConsumerHost.Create(db.ConnectionString,
            builder => builder.AddHandler<OrderRow, RecordingHandler<OrderRow>>("orders"),
            o => o.ConsumerName = consumerName).StartAsync();
        await using var a = await OpenAsync();
        await using var b = await OpenAsync();
        await using var x = await OpenAsync();

        await OrderingTable.ExecuteAsync(a, "BEGIN; INSERT INTO orders VALUES (11, NULL, 'A')");
        await OrderingTable.ExecuteAsync(x, "BEGIN; SELECT * FROM customers WHERE id = 1 FOR UPDATE");
        await OrderingTable.ExecuteAsync(b, "BEGIN; INSERT INTO orders VALUES (12, NULL, 'B'); INSERT INTO orders VALUES (13, 1, 'B2')");
        var bCommit = OrderingTable.ExecuteAsync(b, "COMMIT");
        await Interleaving.ReleasingOnFailureAsync([x], [bCommit], async () =>
        {
            await Interleaving.WaitingOnLockAsync(db, b.ProcessID);
            await OrderingTable.ExecuteAsync(a, "COMMIT");

            // A's notification wakes the consumer, which sees the hole and waits on B's commit lock;
            // a consumer that skipped the hole would deliver A instead.
            await Eventually.UntilAsync(
                async () => host.Sink.Deliveries.Count > 0 || await db.ScalarAsync<long>(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = @app AND wait_event_type = 'Lock'",
                    ("app", "PgEvents:" + consumerName)) > 0,
                "the consumer should read after A's commit");

            host.Sink.Deliveries.Should().BeEmpty("B, committing before A's position, can still commit");
        });

        await OrderingTable.ExecuteAsync(x, "COMMIT");
        await bCommit;
        await host.Sink.WaitForCountAsync(3);

        host.Sink.Deliveries.Select(d => ((OrderRow)d.Row!).Label).Should().Equal("B", "B2", "A");
    }

    [Fact]
    public async Task A_holder_with_a_newer_xid_than_a_later_commit_waiting_in_a_user_deferred_trigger_is_never_skipped()
    {
        var drain = await FreshDrainAsync();
        await using var fast = await OpenAsync();
        await using var slow = await OpenAsync();
        await using var gateKeeper = await OpenAsync();
        await OrderingTable.ExecuteAsync(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({OrderingTable.GateLock})");

        // fast takes its xid first; slow's newer xid is at or above the xmax of the snapshot that
        // sees fast's commit, so no snapshot lists slow as running.
        await OrderingTable.ExecuteAsync(fast, "BEGIN; INSERT INTO items VALUES (101, 'fast')");
        await OrderingTable.ExecuteAsync(slow, "BEGIN; INSERT INTO items VALUES (102, 'slow'); INSERT INTO gate (action) VALUES ('wait')");
        var slowCommit = OrderingTable.ExecuteAsync(slow, "COMMIT");
        await Interleaving.ReleasingOnFailureAsync([gateKeeper], [slowCommit], async () =>
        {
            await OrderingTable.WaitUntilBlockedAtGateAsync(db);
            await OrderingTable.ExecuteAsync(fast, "COMMIT");

            var whileSlowWaits = await drain.ReadOnceAsync();
            whileSlowWaits.Events.Should().BeEmpty();
            whileSlowWaits.WaitingOn.Should().NotBeNull();
            (await drain.ReadOnceAsync()).Events.Should().BeEmpty("the slow holder can still commit");
        });

        await OrderingTable.ExecuteAsync(gateKeeper, "COMMIT");
        await slowCommit;
        Labels(await drain.DrainAsync()).Should().Equal("Insert:slow", "Insert:fast");
    }

    [Fact]
    public async Task A_burnt_position_is_passed_over_at_once_while_an_unrelated_transaction_holding_an_xid_stays_open()
    {
        var drain = await FreshDrainAsync();
        await using var bystander = await OpenAsync();
        await using var failing = await OpenAsync();
        await using var later = await OpenAsync();

        // An open transaction with an xid that wrote an untracked table (and one that wrote a tracked
        // one) has not reached its commit: it must not delay anybody.
        await OrderingTable.ExecuteAsync(bystander, "BEGIN; INSERT INTO untracked (note) VALUES ('open for hours')");
        await using var trackedBystander = await OpenAsync();
        await OrderingTable.ExecuteAsync(trackedBystander, "BEGIN; INSERT INTO items VALUES (201, 'open, tracked')");

        await OrderingTable.ExecuteAsync(failing, "BEGIN; INSERT INTO items VALUES (202, 'fails at commit'); INSERT INTO children VALUES (202, -1)");
        var commit = () => OrderingTable.ExecuteAsync(failing, "COMMIT");
        await commit.Should().ThrowAsync<PostgresException>();
        await OrderingTable.ExecuteAsync(later, "INSERT INTO items VALUES (203, 'later')");

        Labels((await drain.ReadOnceAsync()).Events).Should().Equal(["Insert:later"], "one read sees the hole, finds nobody in the commit phase and decides");
        drain.PendingHole.Should().BeNull();

        await OrderingTable.ExecuteAsync(trackedBystander, "COMMIT");
        Labels(await drain.DrainAsync()).Should().Equal("Insert:open, tracked");
        await OrderingTable.ExecuteAsync(bystander, "ROLLBACK");
    }

    [Fact]
    public async Task The_real_consumer_delivers_past_a_burnt_position_in_well_under_a_second_while_an_unrelated_transaction_stays_open()
    {
        await using var setup = await OpenAsync();
        var consumerName = "burnt_" + Guid.NewGuid().ToString("N")[..8];
        await using var host = await ConsumerHost.Create(db.ConnectionString,
            builder => builder.AddHandler<ItemRow, RecordingHandler<ItemRow>>("items"),
            o =>
            {
                o.ConsumerName = consumerName;

                // No poll comes to the rescue: the notification of the later commit must suffice.
                o.PollInterval = TimeSpan.FromMinutes(5);
            }).StartAsync();
        await using var bystander = await OpenAsync();
        await using var failing = await OpenAsync();
        await OrderingTable.ExecuteAsync(bystander, "BEGIN; INSERT INTO untracked (note) VALUES ('left open')");
        await OrderingTable.ExecuteAsync(failing, "BEGIN; INSERT INTO items VALUES (301, 'fails at commit'); INSERT INTO children VALUES (301, -1)");
        var commit = () => OrderingTable.ExecuteAsync(failing, "COMMIT");
        await commit.Should().ThrowAsync<PostgresException>();

        await OrderingTable.ExecuteAsync(setup, "INSERT INTO items VALUES (302, 'later')");
        await host.Sink.WaitForCountAsync(1, TimeSpan.FromSeconds(1));

        host.Sink.Deliveries.Select(d => ((ItemRow)d.Row!).Value).Should().Equal("later");
        (await ScalarAsync<string>(bystander, "SELECT 'still open'")).Should().Be("still open");
        await OrderingTable.ExecuteAsync(bystander, "ROLLBACK");
    }

    [Fact]
    public async Task Writes_after_SET_CONSTRAINTS_ALL_IMMEDIATE_sort_after_a_transaction_that_committed_before_them()
    {
        // The issue's interleaving: with constraints immediate, B's later update of A's row must not
        // keep the early position, or a replica would end with A's value.
        var drain = await FreshDrainAsync();
        await using var a = await OpenAsync();
        await using var b = await OpenAsync();

        await OrderingTable.ExecuteAsync(b, "BEGIN; INSERT INTO items VALUES (410, 'b-10'); SET CONSTRAINTS ALL IMMEDIATE; INSERT INTO items VALUES (411, 'b-11')");
        await OrderingTable.ExecuteAsync(a, "INSERT INTO items VALUES (420, 'a-20')");
        await OrderingTable.ExecuteAsync(b, "UPDATE items SET value = 'b-updated-20' WHERE id = 420; COMMIT");

        var events = await drain.DrainAsync();
        Labels(events).Should().Equal("Insert:a-20", "Insert:b-10", "Insert:b-11", "Update:b-updated-20");
        events.Select(e => e.Position).Distinct().Should().HaveCount(2, "each transaction sits at one position");
    }

    [Fact]
    public async Task Repeated_SET_CONSTRAINTS_IMMEDIATE_inside_savepoints_that_roll_back_keeps_the_last_write_after_earlier_commits()
    {
        var drain = await FreshDrainAsync();
        await using var a = await OpenAsync();
        await using var b = await OpenAsync();

        await OrderingTable.ExecuteAsync(b,
            "BEGIN; INSERT INTO items VALUES (430, 'b-30'); SAVEPOINT s; SET CONSTRAINTS ALL IMMEDIATE; " +
            "INSERT INTO items VALUES (431, 'b-31 rolled back'); ROLLBACK TO s");
        await OrderingTable.ExecuteAsync(a, "INSERT INTO items VALUES (440, 'a-40')");
        await OrderingTable.ExecuteAsync(b,
            "SAVEPOINT t; SET CONSTRAINTS ALL IMMEDIATE; UPDATE items SET value = 'b saw ' || value WHERE id = 440; RELEASE t; " +
            "SET CONSTRAINTS ALL IMMEDIATE");
        await OrderingTable.ExecuteAsync(a, "INSERT INTO items VALUES (441, 'a-41')");
        await OrderingTable.ExecuteAsync(b,
            "SAVEPOINT u; INSERT INTO items VALUES (432, 'b-32 rolled back'); ROLLBACK TO u; " +
            "UPDATE items SET value = 'b saw ' || value WHERE id = 441; SET CONSTRAINTS ALL DEFERRED; COMMIT");

        Labels(await drain.DrainAsync()).Should().Equal(
            "Insert:a-40", "Insert:a-41", "Insert:b-30", "Update:b saw a-40", "Update:b saw a-41");
    }

    [Fact]
    public async Task A_position_burnt_by_a_rolled_back_savepoint_does_not_wait_for_the_rest_of_its_transaction()
    {
        // The savepoint took a position (and its commit lock) and rolled both back: nobody can commit
        // that position any more, even though its transaction is still open.
        var drain = await FreshDrainAsync();
        await using var b = await OpenAsync();
        await using var a = await OpenAsync();

        await OrderingTable.ExecuteAsync(b, "BEGIN; SAVEPOINT s; INSERT INTO items VALUES (450, 'rolled back'); SET CONSTRAINTS ALL IMMEDIATE; ROLLBACK TO s");
        await OrderingTable.ExecuteAsync(a, "INSERT INTO items VALUES (451, 'a')");

        Labels((await drain.ReadOnceAsync()).Events).Should().Equal("Insert:a");
        await OrderingTable.ExecuteAsync(b, "INSERT INTO items VALUES (452, 'b'); COMMIT");
        Labels(await drain.DrainAsync()).Should().Equal("Insert:b");
    }

    [Fact]
    public async Task A_transaction_made_immediate_and_left_open_holds_back_later_positions_until_it_ends()
    {
        // It took a position and can still commit it: the documented price of SET CONSTRAINTS
        // IMMEDIATE on a tracked write.
        var drain = await FreshDrainAsync();
        await using var b = await OpenAsync();
        await using var a = await OpenAsync();

        await OrderingTable.ExecuteAsync(b, "BEGIN; INSERT INTO items VALUES (460, 'b'); SET CONSTRAINTS ALL IMMEDIATE");
        await OrderingTable.ExecuteAsync(a, "INSERT INTO items VALUES (461, 'a')");

        var batch = await drain.ReadOnceAsync();
        batch.Events.Should().BeEmpty();
        batch.WaitingOn!.Holders.Should().ContainSingle();

        await OrderingTable.ExecuteAsync(b, "COMMIT");
        Labels(await drain.DrainAsync()).Should().Equal("Insert:b", "Insert:a");
    }

    [Fact]
    public async Task A_transaction_connected_to_another_database_never_counts_as_a_holder()
    {
        var drain = await FreshDrainAsync();
        var server = await TestServer.GetAsync();
        var otherDatabase = await server.CreateDatabaseAsync("neighbour");
        try
        {
            // The neighbour runs PgEvents too, with the same schema name, and is in its commit phase.
            await using var neighbourSetup = NpgsqlDataSource.Create(otherDatabase);
            var neighbourSchema = new PgEventsSchema(neighbourSetup, new PgEventsSchemaOptions());
            await neighbourSchema.InstallAsync();
            await using (var create = neighbourSetup.CreateCommand("CREATE TABLE items (id int PRIMARY KEY, value text)"))
            {
                await create.ExecuteNonQueryAsync();
            }

            await neighbourSchema.TrackTableAsync(new TableName("public", "items"));
            await using var neighbour = await neighbourSetup.OpenConnectionAsync();
            await OrderingTable.ExecuteAsync(neighbour, "BEGIN; INSERT INTO items VALUES (1, 'n'); SET CONSTRAINTS ALL IMMEDIATE");

            await using var failing = await OpenAsync();
            await OrderingTable.ExecuteAsync(failing, "BEGIN; INSERT INTO items VALUES (470, 'fails'); INSERT INTO children VALUES (470, -1)");
            var commit = () => OrderingTable.ExecuteAsync(failing, "COMMIT");
            await commit.Should().ThrowAsync<PostgresException>();
            await OrderingTable.ExecuteAsync(failing, "INSERT INTO items VALUES (471, 'after')");

            Labels((await drain.ReadOnceAsync()).Events).Should().Equal(["Insert:after"], "a lock of another database cannot hold this one's position");
            await OrderingTable.ExecuteAsync(neighbour, "ROLLBACK");
        }
        finally
        {
            await server.DropDatabaseAsync(otherDatabase);
        }
    }

    public sealed record OrderRow(int Id, int? CustomerId, string Label);

    public sealed record ItemRow(int Id, string Value);
}
