using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// A consumer reads the tables it maps and passes over the rest, except what it mapped before: the
/// backlog of a table whose handler was removed is still its business.
/// </summary>
public sealed class SubscriptionTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private const string SharedLog = "log_subscriptions";

    private ConsumerHost Consumer(string name, Action<PgEventsBuilder> map, Action<PgEventsOptions>? configure = null) =>
        ConsumerHost.Create(db.ConnectionString, map, o =>
        {
            o.ConsumerName = name;
            o.SchemaName = SharedLog;
            configure?.Invoke(o);
        });

    private Task CreateTableAsync(string table) =>
        db.ExecuteAsync($"CREATE TABLE {table} (id bigint PRIMARY KEY, widget_id bigint NOT NULL, label text NOT NULL)");

    private static async Task<ConsumerStatus> CaughtUpAsync(ConsumerHost host) =>
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(),
            s => s.CursorPosition == s.HeadPosition && s.LagEvents == 0,
            s => $"cursor {s.CursorPosition}/{s.CursorEventId}, head {s.HeadPosition}, lag {s.LagEvents}, blocked {s.Blocked?.LastError}");

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public async Task Two_consumers_with_default_options_each_get_only_their_tables_and_neither_blocks(int lanes)
    {
        var a = $"sub_a{lanes}";
        var b = $"sub_b{lanes}";
        await CreateTableAsync(a);
        await CreateTableAsync(b);
        await using var first = await Consumer(a, m => m.AddHandler<Gadget, RecordingHandler<Gadget>>(a), o => o.DeliveryLanes = lanes).StartAsync();
        await using var second = await Consumer(b, m => m.AddHandler<Gadget, RecordingHandler<Gadget>>(b), o => o.DeliveryLanes = lanes).StartAsync();

        await using (var connection = await db.DataSource.OpenConnectionAsync())
        {
            for (var i = 1; i <= 30; i++)
            {
                // Alone, and together in one transaction.
                var sql = (i % 3) switch
                {
                    0 => $"INSERT INTO {a} VALUES ({i}, 1, 'a'); INSERT INTO {b} VALUES ({i}, 1, 'b')",
                    1 => $"INSERT INTO {a} VALUES ({i}, 1, 'a')",
                    _ => $"INSERT INTO {b} VALUES ({i}, 1, 'b')",
                };
                await using var command = new NpgsqlCommand(sql, connection);
                await command.ExecuteNonQueryAsync();
            }
        }

        await first.Sink.WaitForCountAsync(20);
        await second.Sink.WaitForCountAsync(20);
        var firstStatus = await CaughtUpAsync(first);
        var secondStatus = await CaughtUpAsync(second);

        first.Sink.Deliveries.Should().OnlyContain(d => d.Table == a).And.HaveCount(20);
        second.Sink.Deliveries.Should().OnlyContain(d => d.Table == b).And.HaveCount(20);
        firstStatus.Blocked.Should().BeNull();
        secondStatus.Blocked.Should().BeNull();
    }

    [Fact]
    public async Task A_consumer_of_a_quiet_table_moves_its_cursor_past_other_tables_so_retention_is_not_held_back()
    {
        await CreateTableAsync("sub_quiet");
        await CreateTableAsync("sub_busy");
        await using var busy = await Consumer("sub_busy", m => m.AddHandler<Gadget, RecordingHandler<Gadget>>("sub_busy")).StartAsync();
        await using var quiet = await Consumer("sub_quiet", m => m.AddHandler<Gadget, RecordingHandler<Gadget>>("sub_quiet")).StartAsync();

        for (var i = 1; i <= 600; i += 100)
        {
            await db.ExecuteAsync($"INSERT INTO sub_busy SELECT g, 1, 'busy' FROM generate_series({i}, {i + 99}) g");
        }

        await db.ExecuteAsync("INSERT INTO sub_busy SELECT g, 1, 'busy' FROM generate_series(1000, 1999) g");
        var status = await CaughtUpAsync(quiet);
        status.HeadPosition.Should().BeGreaterThan(0);
        quiet.Sink.Deliveries.Should().BeEmpty();
        await CaughtUpAsync(busy);
        await Eventually.UntilAsync(
            async () => await db.ScalarAsync<long>($"SELECT position FROM {SharedLog}.consumers WHERE name = 'sub_quiet'") == status.HeadPosition,
            "the quiet consumer saves a cursor at the head, so it does not hold retention back");
    }

    [Fact]
    public async Task The_backlog_of_a_table_whose_handler_was_removed_blocks_until_skipped_and_its_later_changes_are_not_delivered()
    {
        await CreateTableAsync("sub_kept");
        await CreateTableAsync("sub_dropped");
        void Both(PgEventsBuilder m) => m.AddHandler<Gadget, RecordingHandler<Gadget>>("sub_kept").AddHandler<Gadget, RecordingHandler<Gadget>>("sub_dropped");
        void KeptOnly(PgEventsBuilder m) => m.AddHandler<Gadget, RecordingHandler<Gadget>>("sub_kept");

        await using (var both = await Consumer("sub_removed", Both).StartAsync())
        {
            await db.ExecuteAsync("INSERT INTO sub_dropped VALUES (1, 1, 'seen')");
            await both.Sink.WaitForCountAsync(1);
        }

        // Committed while the consumer still mapped sub_dropped: its business.
        await db.ExecuteAsync("INSERT INTO sub_dropped VALUES (2, 1, 'backlog')");
        await db.ExecuteAsync("INSERT INTO sub_kept VALUES (1, 1, 'after the backlog')");

        await using (var blocked = await Consumer("sub_removed", KeptOnly).StartAsync())
        {
            var status = await Eventually.UntilAsync(
                () => blocked.Consumer.GetStatusAsync(), s => s.Blocked is not null, s => $"cursor {s.CursorPosition}, lag {s.LagEvents}");
            status.Blocked!.Table.Should().Be(new TableName("public", "sub_dropped"));
            status.Blocked.LastError.Should().Contain("No handler is registered for table \"public\".\"sub_dropped\"");
            blocked.Sink.Deliveries.Should().BeEmpty("nothing passes a blocked event");
        }

        await using var skipping = await Consumer("sub_removed", KeptOnly, o => o.UnmappedTablePolicy = UnmappedTablePolicy.Skip).StartAsync();
        await skipping.Sink.WaitForCountAsync(1);
        await db.ExecuteAsync("INSERT INTO sub_dropped VALUES (3, 1, 'after the handler was removed')");
        await db.ExecuteAsync("INSERT INTO sub_kept VALUES (2, 1, 'later')");
        await skipping.Sink.WaitForCountAsync(2);
        var final = await CaughtUpAsync(skipping);

        skipping.Sink.Deliveries.Should().OnlyContain(d => d.Table == "sub_kept");
        final.Blocked.Should().BeNull();
    }

    [Fact]
    public async Task A_mapped_table_renamed_while_the_consumer_runs_stops_it_instead_of_vanishing_from_its_reads()
    {
        await CreateTableAsync("sub_before_rename");
        await using var host = await Consumer("sub_rename", m => m.AddHandler<Gadget, RecordingHandler<Gadget>>("sub_before_rename")).StartAsync();
        await db.ExecuteAsync("INSERT INTO sub_before_rename VALUES (1, 1, 'old name')");
        await host.Sink.WaitForCountAsync(1);

        await db.ExecuteAsync("ALTER TABLE sub_before_rename RENAME TO sub_after_rename");
        await db.ExecuteAsync("INSERT INTO sub_after_rename VALUES (2, 1, 'new name')");

        var status = await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Blocked is not null, s => $"cursor {s.CursorPosition}, head {s.HeadPosition}");
        status.Blocked!.Table.Should().Be(new TableName("public", "sub_after_rename"));
        status.Blocked.LastError.Should().Contain("renamed");
    }
}
