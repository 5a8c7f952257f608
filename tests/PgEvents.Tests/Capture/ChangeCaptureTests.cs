using System.Text.Json;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Capture;

public sealed class ChangeCaptureTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.InstallAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    private async Task<(LogDrain Drain, TableName Table)> TrackedTableAsync(string name, string columns = "id int PRIMARY KEY, label text")
    {
        var table = new TableName("public", name);
        await db.ExecuteAsync($"CREATE TABLE {table} ({columns})");
        await _schema.TrackTableAsync(table);
        var drain = new LogDrain(db.DataSource, _schema);
        await drain.DrainAsync();
        return (drain, table);
    }

    [Fact]
    public async Task Insert_update_and_delete_are_captured_with_their_row_images()
    {
        var (drain, table) = await TrackedTableAsync("images");

        await db.ExecuteAsync($"INSERT INTO {table} VALUES (1, 'one')");
        await db.ExecuteAsync($"UPDATE {table} SET label = 'uno' WHERE id = 1");
        await db.ExecuteAsync($"DELETE FROM {table} WHERE id = 1");
        var events = await drain.DrainAsync();

        events.Select(e => e.Kind).Should().Equal(ChangeKind.Insert, ChangeKind.Update, ChangeKind.Delete);
        events.Should().AllSatisfy(e => e.TableName.Should().Be(table));
        Json(events[0].RowJson).Should().Be("""{"id":1,"label":"one"}""");
        events[0].OldRowJson.Should().BeNull();
        Json(events[1].RowJson).Should().Be("""{"id":1,"label":"uno"}""");
        Json(events[1].OldRowJson).Should().Be("""{"id":1,"label":"one"}""");
        Json(events[2].RowJson).Should().Be("""{"id":1,"label":"uno"}""");
        events[2].OldRowJson.Should().BeNull();
        events.Select(e => e.Position).Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
    }

    [Fact]
    public async Task Truncate_is_captured_as_one_event_without_a_row()
    {
        var (drain, table) = await TrackedTableAsync("truncated");
        await db.ExecuteAsync($"INSERT INTO {table} SELECT g, 'x' FROM generate_series(1, 50) g");
        await drain.DrainAsync();

        await db.ExecuteAsync($"TRUNCATE {table}");
        var events = await drain.DrainAsync();

        events.Should().ContainSingle().Which.Should().Match<CapturedEvent>(e =>
            e.Kind == ChangeKind.Truncate && e.RowJson == null && e.OldRowJson == null);
    }

    [Fact]
    public async Task An_update_that_changes_nothing_is_not_captured_and_opens_no_transaction()
    {
        var (drain, table) = await TrackedTableAsync("noops");
        await db.ExecuteAsync($"INSERT INTO {table} VALUES (1, 'same'), (2, 'same')");
        await drain.DrainAsync();
        var transactionsBefore = await db.ScalarAsync<long>("SELECT count(*) FROM pgevents.transactions");

        await db.ExecuteAsync($"UPDATE {table} SET label = 'same'");
        await db.ExecuteAsync($"UPDATE {table} SET label = 'changed' WHERE id = 2");
        var events = await drain.DrainAsync();

        events.Should().ContainSingle().Which.RowJson.Should().Contain("changed");
        (await db.ScalarAsync<long>("SELECT count(*) FROM pgevents.transactions")).Should().Be(transactionsBefore + 1);
    }

    [Fact]
    public async Task Statements_touching_no_rows_produce_no_events_and_no_transaction()
    {
        var (drain, table) = await TrackedTableAsync("empty_statements");
        var transactionsBefore = await db.ScalarAsync<long>("SELECT count(*) FROM pgevents.transactions");

        await db.ExecuteAsync($"INSERT INTO {table} SELECT 1, 'x' WHERE false");
        await db.ExecuteAsync($"DELETE FROM {table} WHERE id = 42");

        (await drain.DrainAsync()).Should().BeEmpty();
        (await db.ScalarAsync<long>("SELECT count(*) FROM pgevents.transactions")).Should().Be(transactionsBefore);
    }

    [Fact]
    public async Task A_one_megabyte_row_is_captured_whole()
    {
        var (drain, table) = await TrackedTableAsync("big_rows", "id int PRIMARY KEY, payload text");
        var payload = string.Concat(Enumerable.Range(0, 1024 * 1024 / 32).Select(i => Guid.NewGuid().ToString("N")));

        await db.ExecuteAsync($"INSERT INTO {table} VALUES (1, @payload)", ("payload", payload));
        var events = await drain.DrainAsync();

        using var row = JsonDocument.Parse(events.Should().ContainSingle().Subject.RowJson!);
        row.RootElement.GetProperty("payload").GetString().Should().Be(payload);
    }

    [Fact]
    public async Task Bulk_insert_select_is_captured_in_row_order_within_one_transaction()
    {
        var (drain, table) = await TrackedTableAsync("bulk");

        await db.ExecuteAsync($"INSERT INTO {table} SELECT g, 'row ' || g FROM generate_series(1, 5000) g");
        var events = await drain.DrainAsync();

        events.Should().HaveCount(5000);
        events.Select(e => e.TransactionId).Distinct().Should().ContainSingle();
        events.Select(e => JsonDocument.Parse(e.RowJson!).RootElement.GetProperty("id").GetInt32())
            .Should().Equal(Enumerable.Range(1, 5000));
    }

    [Fact]
    public async Task Tables_and_columns_with_spaces_capitals_and_quotes_are_tracked()
    {
        await db.ExecuteAsync("CREATE SCHEMA \"Sales Dept\"");
        var tables = new[]
        {
            new TableName("public", "Order Items"),
            new TableName("public", "weird\"name"),
            new TableName("Sales Dept", "MixedCase"),
            new TableName("public", "semi;colon'--"),
        };
        foreach (var table in tables)
        {
            await db.ExecuteAsync($"CREATE TABLE {table} (\"Id\" int PRIMARY KEY, \"Weird \"\"Col\"\"\" text)");
            await _schema.TrackTableAsync(table);
        }

        var drain = new LogDrain(db.DataSource, _schema);
        await drain.DrainAsync();
        foreach (var table in tables)
        {
            await db.ExecuteAsync($"INSERT INTO {table} VALUES (7, 'v')");
        }

        var events = await drain.DrainAsync();

        events.Select(e => e.TableName).Should().Equal(tables);
        using var row = JsonDocument.Parse(events[1].RowJson!);
        row.RootElement.GetProperty("Id").GetInt32().Should().Be(7);
        row.RootElement.GetProperty("Weird \"Col\"").GetString().Should().Be("v");
        (await _schema.GetTrackedTablesAsync()).Should().Contain(tables);
    }

    [Fact]
    public async Task Untracking_a_table_stops_capture_and_keeps_what_was_captured()
    {
        var (drain, table) = await TrackedTableAsync("untracked_later");
        await db.ExecuteAsync($"INSERT INTO {table} VALUES (1, 'before')");

        await _schema.UntrackTableAsync(table);
        await db.ExecuteAsync($"INSERT INTO {table} VALUES (2, 'after')");
        await db.ExecuteAsync($"UPDATE {table} SET label = 'changed'");
        await db.ExecuteAsync($"TRUNCATE {table}");

        var events = await drain.DrainAsync();
        events.Should().ContainSingle().Which.RowJson.Should().Contain("before");
        (await _schema.GetTrackedTablesAsync()).Should().NotContain(table);
    }

    [Fact]
    public async Task Tracking_twice_installs_the_triggers_once()
    {
        var (drain, table) = await TrackedTableAsync("tracked_twice");
        await _schema.TrackTableAsync(table);

        await db.ExecuteAsync($"INSERT INTO {table} VALUES (1, 'x')");

        (await drain.DrainAsync()).Should().ContainSingle();
    }

    [Fact]
    public async Task Tracking_a_missing_table_names_it_in_the_exception()
    {
        var track = () => _schema.TrackTableAsync(TableName.Parse("public.Does Not Exist"));

        (await track.Should().ThrowAsync<PgEventsException>()).WithMessage("*\"public\".\"Does Not Exist\" does not exist*");
    }

    [Fact]
    public async Task Tracking_a_view_is_refused_with_a_clear_message()
    {
        await db.ExecuteAsync("CREATE VIEW some_view AS SELECT 1 AS one");

        var track = () => _schema.TrackTableAsync(new TableName("public", "some_view"));

        (await track.Should().ThrowAsync<PgEventsException>()).WithMessage("*some_view*can only track ordinary or partitioned tables*");
    }

    [Fact]
    public async Task While_a_consumer_sleeps_every_event_producing_transaction_sends_one_small_notification()
    {
        var (drain, table) = await TrackedTableAsync("notified");
        await using var listener = await db.DataSource.OpenConnectionAsync();
        var payloads = new List<string>();
        listener.Notification += (_, e) => payloads.Add(e.Payload);
        await using (var listen = new NpgsqlCommand("LISTEN pgevents", listener))
        {
            await listen.ExecuteNonQueryAsync();
        }

        // A sleeping consumer holds the doorbell.
        await using var sleeper = await db.DataSource.OpenConnectionAsync();
        await using (var hold = new NpgsqlCommand("SELECT pg_advisory_lock_shared(@class, @key)", sleeper))
        {
            hold.Parameters.AddWithValue("class", SchemaSettings.AdvisoryLockClass);
            hold.Parameters.AddWithValue("key", _schema.Settings.DoorbellKey);
            await hold.ExecuteNonQueryAsync();
        }

        await db.ExecuteAsync($"INSERT INTO {table} SELECT g, repeat('x', 10000) FROM generate_series(1, 100) g");
        await using (var connection = await db.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            for (var i = 101; i <= 110; i++)
            {
                await using var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES ({i}, 'y')", connection, transaction);
                await insert.ExecuteNonQueryAsync();
            }

            await transaction.CommitAsync();
        }

        await NotifyFenceAsync(listener, payloads);
        payloads.Should().Equal("", "", "fence");
        await drain.DrainAsync();

        // Nobody sleeps any more: writers commit without NOTIFY (and its cluster-wide commit lock).
        await using (var release = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", sleeper))
        {
            await release.ExecuteNonQueryAsync();
        }

        payloads.Clear();
        await db.ExecuteAsync($"INSERT INTO {table} VALUES (111, 'z')");
        await NotifyFenceAsync(listener, payloads);
        payloads.Should().Equal("fence");
        (await drain.DrainAsync()).Should().ContainSingle("the log has the change whether or not anybody was notified");
    }

    private async Task NotifyFenceAsync(NpgsqlConnection listener, List<string> payloads)
    {
        await db.ExecuteAsync("SELECT pg_notify('pgevents', 'fence')");
        while (!payloads.Contains("fence"))
        {
            (await listener.WaitAsync(TimeSpan.FromSeconds(30))).Should().BeTrue("the fence notification must arrive");
        }
    }

    [Fact]
    public async Task Tracking_an_already_tracked_table_takes_no_lock_so_it_does_not_wait_for_open_writers()
    {
        var (_, table) = await TrackedTableAsync("busy_table");
        await using var writer = await db.DataSource.OpenConnectionAsync();
        await using var open = await writer.BeginTransactionAsync();
        await using (var insert = new NpgsqlCommand($"INSERT INTO {table} VALUES (1, 'held open')", writer, open))
        {
            await insert.ExecuteNonQueryAsync();
        }

        // Any lock request on the table would wait for the open writer; fail fast instead of hanging.
        await using var impatient = NpgsqlDataSource.Create(db.ConnectionString + ";Options=-c lock_timeout=2000");
        var track = () => new PgEventsSchema(impatient).TrackTableAsync(table);

        await track.Should().NotThrowAsync("the triggers are already in place");
        await open.RollbackAsync();
    }

    private static string Json(string? json) =>
        JsonSerializer.Serialize(JsonDocument.Parse(json ?? "null").RootElement);
}
