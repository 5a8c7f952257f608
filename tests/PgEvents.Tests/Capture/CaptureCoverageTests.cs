using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Capture;

/// <summary>
/// Every change of every tracked table reaches the log, in the order it happened, and capture
/// never fails the application's statement: each test rebuilds a replica from the delivered
/// changes and compares it with the source.
/// </summary>
public sealed class CaptureCoverageTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("coverage", async () =>
    {
        await db.ExecuteAsync("CREATE EXTENSION IF NOT EXISTS citext");
        return await db.InstallAsync();
    });

    public Task DisposeAsync() => Task.CompletedTask;

    private Task<LogDrain> TrackAsync(string ddl, string table) => LogDrain.TrackAsync(db, _schema, ddl, table);

    [Fact]
    public async Task Updates_of_tables_with_json_point_and_xml_columns_succeed_and_are_captured()
    {
        var drain = await TrackAsync("CREATE TABLE docs (id int PRIMARY KEY, doc json, location point, body xml)", "docs");
        await db.ExecuteAsync("""INSERT INTO docs VALUES (1, '{"a":1}', '(1,2)', '<a/>')""");

        await db.ExecuteAsync("""UPDATE docs SET doc = '{"a":2}'""");
        await db.ExecuteAsync("UPDATE docs SET location = '(3,4)', body = '<b/>'");
        await db.ExecuteAsync("UPDATE docs SET id = id");

        var events = await drain.DrainAsync();
        events.Select(e => e.Kind).Should().Equal(ChangeKind.Insert, ChangeKind.Update, ChangeKind.Update);
        var replica = new ReplicaModel(new TableName("public", "docs"), ["id"], ["id", "doc", "location", "body"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "an update that changes nothing byte for byte is the only one dropped");
    }

    [Fact]
    public async Task Changes_that_the_type_calls_equal_but_that_change_the_stored_value_are_captured()
    {
        var drain = await TrackAsync("CREATE TABLE people (id int PRIMARY KEY, email citext, amount numeric)", "people");
        await db.ExecuteAsync("INSERT INTO people VALUES (1, 'Bob@Example.com', 1.0)");

        await db.ExecuteAsync("UPDATE people SET email = 'bob@example.com'");
        await db.ExecuteAsync("UPDATE people SET amount = 1.00");
        await db.ExecuteAsync("UPDATE people SET amount = 1.00, email = 'bob@example.com'");

        var events = await drain.DrainAsync();
        events.Should().HaveCount(3, "the last update stores identical bytes and is the only one dropped");
        var replica = new ReplicaModel(new TableName("public", "people"), ["id"], ["id", "email", "amount"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "citext case and numeric scale are real changes");
    }

    [Fact]
    public async Task Every_leaf_of_a_partitioned_table_is_captured_under_the_tracked_name_including_row_moves_and_later_partitions()
    {
        var drain = await TrackAsync(
            """
            CREATE TABLE accounts (id int, region text, label text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu');
            CREATE TABLE accounts_us PARTITION OF accounts FOR VALUES IN ('us') PARTITION BY RANGE (id);
            CREATE TABLE accounts_us_all PARTITION OF accounts_us DEFAULT;
            """, "accounts");

        await db.ExecuteAsync("INSERT INTO accounts VALUES (1, 'eu', 'a'), (2, 'us', 'b'), (3, 'eu', 'c')");
        await db.ExecuteAsync("INSERT INTO accounts_eu VALUES (4, 'eu', 'direct')");
        await db.ExecuteAsync("UPDATE accounts SET region = 'us', label = 'moved' WHERE id = 1");
        await db.ExecuteAsync("UPDATE accounts SET label = 'in place' WHERE id = 3");
        await db.ExecuteAsync("DELETE FROM accounts_us_all WHERE id = 2");

        // A partition created later gets the row triggers from its parent at once.
        await db.ExecuteAsync("CREATE TABLE accounts_asia PARTITION OF accounts FOR VALUES IN ('asia')");
        await db.ExecuteAsync("INSERT INTO accounts_asia VALUES (5, 'asia', 'new partition')");

        // An attached table's existing rows were never changed, so they produce no events: the
        // replica learns of them only when they change (documented). Its new rows are captured.
        await db.ExecuteAsync(
            """
            CREATE TABLE accounts_sa (id int NOT NULL, region text NOT NULL, label text);
            INSERT INTO accounts_sa VALUES (6, 'sa', 'before attach');
            ALTER TABLE accounts ATTACH PARTITION accounts_sa FOR VALUES IN ('sa');
            UPDATE accounts SET label = 'after attach' WHERE id = 6;
            INSERT INTO accounts_sa VALUES (7, 'sa', 'attached partition');
            """);

        var events = await drain.DrainAsync();
        events.Should().AllSatisfy(e => e.TableName.Should().Be(new TableName("public", "accounts")));
        var moved = events.Where(e => e.RowJson!.Contains("\"id\": 1,", StringComparison.Ordinal)).Select(e => e.Kind).ToList();
        moved.Should().Equal([ChangeKind.Insert, ChangeKind.Delete, ChangeKind.Insert], "a row moving between partitions arrives as a delete and an insert");

        var replica = new ReplicaModel(new TableName("public", "accounts"), ["id", "region"], ["id", "region", "label"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "every leaf, existing, created later or attached, is captured");

        // Tracking again installs the TRUNCATE triggers on the new partitions: a start-up does it.
        (await GetProblemsAsync("accounts")).Should().Contain(p => p.Contains("accounts_asia", StringComparison.Ordinal));
        await _schema.TrackTableAsync(new TableName("public", "accounts"));
        (await GetProblemsAsync("accounts")).Should().BeEmpty();

        await db.ExecuteAsync("TRUNCATE accounts_eu");
        await db.ExecuteAsync("INSERT INTO accounts VALUES (8, 'eu', 'after partition truncate')");
        var afterPartitionTruncate = await drain.DrainAsync();
        afterPartitionTruncate.Select(e => e.Kind).Should().NotContain(ChangeKind.Truncate, "emptying one partition must not empty the whole table downstream");
        replica.ApplyAll(afterPartitionTruncate);
        await replica.ShouldEqualSourceAsync(db, "a truncated partition arrives as deletes of its rows");

        await db.ExecuteAsync("TRUNCATE accounts");
        (await drain.DrainAsync()).Should().ContainSingle().Which.Kind.Should().Be(ChangeKind.Truncate);
    }

    [Fact]
    public async Task Inheritance_children_are_captured_as_their_tracked_parent_even_through_statements_on_the_parent()
    {
        var drain = await TrackAsync(
            """
            CREATE TABLE vehicles (id int PRIMARY KEY, name text);
            CREATE TABLE cars (doors int) INHERITS (vehicles);
            CREATE TABLE sports_cars (top_speed int) INHERITS (cars);
            """, "vehicles");

        await db.ExecuteAsync("INSERT INTO vehicles VALUES (1, 'bike'); INSERT INTO cars VALUES (2, 'sedan', 4); INSERT INTO sports_cars VALUES (3, 'racer', 2, 300)");
        await db.ExecuteAsync("UPDATE vehicles SET name = name || '!'");
        await db.ExecuteAsync("DELETE FROM vehicles WHERE id = 2");

        var events = await drain.DrainAsync();
        events.Should().HaveCount(7).And.AllSatisfy(e => e.TableName.Should().Be(new TableName("public", "vehicles")));
        var replica = new ReplicaModel(new TableName("public", "vehicles"), ["id"], ["id", "name"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "children's rows are the parent's rows");

        await db.ExecuteAsync("INSERT INTO vehicles VALUES (4, 'scooter')");
        await db.ExecuteAsync("TRUNCATE ONLY vehicles");
        var truncatedOnly = await drain.DrainAsync();
        truncatedOnly.Select(e => e.Kind).Should().NotContain(ChangeKind.Truncate, "the children's rows survive TRUNCATE ONLY");
        replica.ApplyAll(truncatedOnly);
        await replica.ShouldEqualSourceAsync(db, "TRUNCATE ONLY arrives as deletes of the parent's own rows");
    }

    [Fact]
    public async Task Writes_made_with_session_replication_role_replica_are_captured_by_default()
    {
        var drain = await TrackAsync("CREATE TABLE replicated (id int PRIMARY KEY, label text)", "replicated");
        await using var connection = await db.DataSource.OpenConnectionAsync();
        await OrderingTable.ExecuteAsync(connection,
            "SET session_replication_role = replica; INSERT INTO replicated VALUES (1, 'applied by a replication worker'); " +
            "UPDATE replicated SET label = 'changed'; INSERT INTO replicated VALUES (2, 'kept'); RESET session_replication_role");

        var events = await drain.DrainAsync();
        events.Select(e => e.Kind).Should().Equal(ChangeKind.Insert, ChangeKind.Update, ChangeKind.Insert);
        var replica = new ReplicaModel(new TableName("public", "replicated"), ["id"], ["id", "label"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "the position trigger fires for replica sessions too, so the events are delivered");
    }

    [Fact]
    public async Task Writes_made_with_session_replication_role_replica_are_left_out_when_the_option_says_so()
    {
        var schema = new PgEventsSchema(db.DataSource, new PgEventsSchemaOptions { SchemaName = "origin_only", CaptureReplicaWrites = false });
        await schema.InstallAsync();
        await db.ExecuteAsync("CREATE TABLE origin_only_items (id int PRIMARY KEY, label text)");
        await schema.TrackTableAsync(new TableName("public", "origin_only_items"));
        var drain = new LogDrain(db.DataSource, schema);

        await using var connection = await db.DataSource.OpenConnectionAsync();
        await OrderingTable.ExecuteAsync(connection,
            "SET session_replication_role = replica; INSERT INTO origin_only_items VALUES (1, 'replicated'); RESET session_replication_role; " +
            "INSERT INTO origin_only_items VALUES (2, 'local')");

        (await drain.DrainAsync()).Should().ContainSingle().Which.RowJson.Should().Contain("local");
        (await db.ScalarAsync<long>("SELECT count(*) FROM origin_only.events e WHERE NOT EXISTS (SELECT 1 FROM origin_only.transactions t WHERE t.xid = e.xid)"))
            .Should().Be(0, "no event row may exist without its transaction's position");
    }

    [Fact]
    public async Task Changes_made_by_a_users_after_insert_trigger_are_delivered_after_the_insert_that_fired_it()
    {
        var drain = await TrackAsync(
            """
            CREATE TABLE invoices (id int PRIMARY KEY, status text NOT NULL);
            CREATE FUNCTION number_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE invoices SET status = 'numbered-' || (NEW.id + 6) WHERE id = NEW.id;
                RETURN NULL;
            END $$;
            CREATE TRIGGER assign_number AFTER INSERT ON invoices FOR EACH ROW EXECUTE FUNCTION number_invoice();
            """, "invoices");

        await db.ExecuteAsync("INSERT INTO invoices VALUES (1, 'draft')");
        await db.ExecuteAsync("INSERT INTO invoices VALUES (1, 'again'), (2, 'new') ON CONFLICT (id) DO UPDATE SET status = 'conflict'");

        var events = await drain.DrainAsync();
        events.Select(e => e.Kind).Should().Equal(
            ChangeKind.Insert, ChangeKind.Update, ChangeKind.Update, ChangeKind.Insert, ChangeKind.Update);
        var replica = new ReplicaModel(new TableName("public", "invoices"), ["id"], ["id", "status"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "an upsert applier ends with the trigger's value, not the inserted draft");
        replica.Rows.Should().Contain("""{"id":1,"status":"conflict"}""").And.Contain("""{"id":2,"status":"numbered-8"}""");
    }

    [Fact]
    public async Task A_disabled_capture_trigger_is_reported_and_tracking_again_enables_it()
    {
        var drain = await TrackAsync("CREATE TABLE switched (id int PRIMARY KEY, label text)", "switched");
        await db.ExecuteAsync("""ALTER TABLE switched DISABLE TRIGGER "!pgevents_update" """);

        var check = () => _schema.EnsureCapturedAsync([new TableName("public", "switched")]);
        (await check.Should().ThrowAsync<PgEventsException>())
            .Which.Message.Should().Contain("switched").And.Contain("!pgevents_update").And.Contain("disabled");

        await _schema.TrackTableAsync(new TableName("public", "switched"));
        await check.Should().NotThrowAsync();
        await db.ExecuteAsync("INSERT INTO switched VALUES (1, 'a'); UPDATE switched SET label = 'b'");
        (await drain.DrainAsync()).Select(e => e.Kind).Should().Equal(ChangeKind.Insert, ChangeKind.Update);
    }

    [Fact]
    public async Task A_renamed_table_is_logged_under_its_new_name_from_the_rename_on()
    {
        var drain = await TrackAsync("CREATE TABLE before_rename (id int PRIMARY KEY, label text)", "before_rename");
        await db.ExecuteAsync("INSERT INTO before_rename VALUES (1, 'old name')");
        await db.ExecuteAsync("ALTER TABLE before_rename RENAME TO after_rename");
        await db.ExecuteAsync("INSERT INTO after_rename VALUES (2, 'new name')");

        (await drain.DrainAsync()).Select(e => e.Table).Should().Equal("before_rename", "after_rename");
        (await _schema.GetTrackedTablesAsync()).Should().Contain(new TableName("public", "after_rename"));
    }

    private async Task<IReadOnlyList<string>> GetProblemsAsync(string table)
    {
        try
        {
            await _schema.EnsureCapturedAsync([new TableName("public", table)]);
            return [];
        }
        catch (PgEventsException e)
        {
            return [e.Message];
        }
    }
}
