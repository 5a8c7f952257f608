using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

public enum WidgetColor
{
    Red,
    Green,
}

public sealed record Widget(long Id, string Name, decimal Price, DateTimeOffset CreatedAt, WidgetColor Color, string[]? Tags);

public sealed record Gadget(long Id, long WidgetId, string Label);

public sealed class ConsumerDeliveryTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private async Task CreateTablesAsync(string suffix) => await db.ExecuteAsync(
        $"""
        CREATE TABLE widgets_{suffix} (id bigint PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL,
            created_at timestamptz NOT NULL, color text NOT NULL, tags text[]);
        CREATE TABLE gadgets_{suffix} (id bigint PRIMARY KEY, widget_id bigint NOT NULL, label text NOT NULL);
        """);

    [Fact]
    public async Task Every_kind_of_change_arrives_typed_with_snake_case_columns_mapped_to_properties()
    {
        await CreateTablesAsync("kinds");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
            .AddHandler<Widget, RecordingHandler<Widget>>("public.widgets_kinds"),
            o => o.ConsumerName = "kinds").StartAsync();

        await db.ExecuteAsync("INSERT INTO widgets_kinds VALUES (1, 'bolt', 9.99, '2026-01-02T03:04:05Z', 'Red', '{a,b}')");
        await db.ExecuteAsync("UPDATE widgets_kinds SET price = 12.50, color = 'Green' WHERE id = 1");
        await db.ExecuteAsync("DELETE FROM widgets_kinds WHERE id = 1");
        await db.ExecuteAsync("TRUNCATE widgets_kinds");
        await host.Sink.WaitForCountAsync(4);

        var deliveries = host.Sink.Deliveries;
        deliveries.Select(d => d.Kind).Should().Equal(ChangeKind.Insert, ChangeKind.Update, ChangeKind.Delete, ChangeKind.Truncate);
        deliveries[0].Row.Should().BeEquivalentTo(new Widget(1, "bolt", 9.99m, new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero), WidgetColor.Red, ["a", "b"]));
        deliveries[0].OldRow.Should().BeNull();
        ((Widget)deliveries[1].Row!).Should().Match<Widget>(w => w.Price == 12.50m && w.Color == WidgetColor.Green);
        ((Widget)deliveries[1].OldRow!).Price.Should().Be(9.99m);
        ((Widget)deliveries[2].Row!).Id.Should().Be(1, "a delete carries the deleted row");
        deliveries[3].Row.Should().BeNull();
    }

    [Fact]
    public async Task Changes_across_tables_and_transactions_arrive_in_commit_order()
    {
        await CreateTablesAsync("order");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
            .AddHandler<Widget, RecordingHandler<Widget>>("widgets_order")
            .AddHandler<Gadget, RecordingHandler<Gadget>>("gadgets_order"),
            o => o.ConsumerName = "order").StartAsync();

        await using var first = await db.DataSource.OpenConnectionAsync();
        await using var second = await db.DataSource.OpenConnectionAsync();
        await OrderingTable.ExecuteAsync(first, "BEGIN; INSERT INTO widgets_order VALUES (1, 'w1', 1, now(), 'Red', NULL)");
        await OrderingTable.ExecuteAsync(second, "BEGIN; INSERT INTO gadgets_order VALUES (10, 1, 'g10')");
        await OrderingTable.ExecuteAsync(first, "INSERT INTO gadgets_order VALUES (11, 1, 'g11')");
        await OrderingTable.ExecuteAsync(second, "INSERT INTO widgets_order VALUES (2, 'w2', 2, now(), 'Green', NULL); COMMIT");
        await OrderingTable.ExecuteAsync(first, "COMMIT");
        await db.ExecuteAsync("UPDATE gadgets_order SET label = 'g10b' WHERE id = 10");
        await host.Sink.WaitForCountAsync(5);

        host.Sink.Deliveries.Select(d => $"{d.Table}:{d.Row switch { Widget w => w.Name, Gadget g => g.Label, _ => "?" }}")
            .Should().Equal("gadgets_order:g10", "widgets_order:w2", "widgets_order:w1", "gadgets_order:g11", "gadgets_order:g10b");
    }

    [Fact]
    public async Task Several_handlers_per_table_and_one_handler_for_several_tables_each_get_their_events()
    {
        await db.ExecuteAsync("CREATE TABLE multi_a (id bigint PRIMARY KEY, widget_id bigint NOT NULL, label text NOT NULL)");
        await db.ExecuteAsync("CREATE TABLE multi_b (id bigint PRIMARY KEY, widget_id bigint NOT NULL, label text NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
            .AddHandler<Gadget, RecordingHandler<Gadget>>("multi_a")
            .AddHandler<Gadget, SecondRecordingHandler<Gadget>>("multi_a")
            .AddHandler<Gadget, RecordingHandler<Gadget>>("multi_b"),
            o => o.ConsumerName = "multi").StartAsync();

        await db.ExecuteAsync("INSERT INTO multi_a VALUES (1, 0, 'a')");
        await db.ExecuteAsync("INSERT INTO multi_b VALUES (2, 0, 'b')");
        await host.Sink.WaitForCountAsync(3);

        host.Sink.Deliveries.Select(d => $"{d.Handler}:{d.Table}").Should().Equal(
            "RecordingHandler`1:multi_a", "second:multi_a", "RecordingHandler`1:multi_b");
    }

    [Fact]
    public async Task A_notification_wakes_the_consumer_without_waiting_for_the_poll_interval()
    {
        await CreateTablesAsync("wake");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
            .AddHandler<Widget, RecordingHandler<Widget>>("widgets_wake"),
            o => { o.ConsumerName = "wake"; o.PollInterval = TimeSpan.FromHours(1); }).StartAsync();

        // Give the consumer its first (empty) read so it is parked waiting for the hour-long poll.
        await Eventually.UntilAsync(async () => (await host.Consumer.GetStatusAsync()).IsActive, "the consumer should become active", TimeSpan.FromSeconds(20));
        await db.ExecuteAsync("INSERT INTO widgets_wake VALUES (1, 'w', 1, now(), 'Red', NULL)");

        await host.Sink.WaitForCountAsync(1, TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Two_differently_named_consumers_each_receive_every_event()
    {
        await CreateTablesAsync("two");
        await using var one = await ConsumerHost.Create(db.ConnectionString, b => b
            .AddHandler<Widget, RecordingHandler<Widget>>("widgets_two"), o => { o.ConsumerName = "one"; o.SchemaName = "shared_log"; }).StartAsync();
        await using var two = await ConsumerHost.Create(db.ConnectionString, b => b
            .AddHandler<Widget, RecordingHandler<Widget>>("widgets_two"), o => { o.ConsumerName = "two"; o.SchemaName = "shared_log"; }).StartAsync();

        await db.ExecuteAsync("INSERT INTO widgets_two SELECT g, 'w' || g, g, now(), 'Red', NULL FROM generate_series(1, 300) g");
        await one.Sink.WaitForCountAsync(300);
        await two.Sink.WaitForCountAsync(300);

        one.Sink.Deliveries.Select(d => ((Widget)d.Row!).Id).Should().Equal(Enumerable.Range(1, 300).Select(i => (long)i));
        two.Sink.Deliveries.Select(d => ((Widget)d.Row!).Id).Should().Equal(Enumerable.Range(1, 300).Select(i => (long)i));
    }

    [Fact]
    public async Task Status_reports_head_cursor_and_zero_lag_when_caught_up()
    {
        await CreateTablesAsync("status");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
            .AddHandler<Widget, RecordingHandler<Widget>>("widgets_status"), o => o.ConsumerName = "status").StartAsync();

        await db.ExecuteAsync("INSERT INTO widgets_status SELECT g, 'w', 1, now(), 'Red', NULL FROM generate_series(1, 10) g");
        await host.Sink.WaitForCountAsync(10);
        var last = host.Sink.Deliveries[^1];

        // The handler records the event before the consumer moves its cursor past it.
        var status = await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.CursorEventId == last.EventId,
            s => $"the cursor should reach the last delivered event {last.EventId}; it is at {s.CursorEventId}", TimeSpan.FromSeconds(10));

        status.ConsumerName.Should().Be("status");
        status.IsActive.Should().BeTrue();
        status.CursorPosition.Should().Be(last.Position);
        status.CursorEventId.Should().Be(last.EventId);
        status.HeadPosition.Should().Be(last.Position);
        status.LagEvents.Should().Be(0);
        status.LagTime.Should().Be(TimeSpan.Zero);
        status.Blocked.Should().BeNull();

        await host.StopAsync();
        await db.ExecuteAsync("INSERT INTO widgets_status VALUES (11, 'w', 1, now(), 'Red', NULL), (12, 'w', 1, now(), 'Red', NULL)");
        var stopped = await host.Consumer.GetStatusAsync();
        stopped.IsActive.Should().BeFalse();
        stopped.LagEvents.Should().Be(2);
        stopped.HeadPosition.Should().Be(last.Position + 1);
        stopped.LagTime.Should().BeGreaterThanOrEqualTo(TimeSpan.Zero);
    }
}
