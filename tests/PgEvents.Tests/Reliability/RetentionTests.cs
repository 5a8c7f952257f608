using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

public sealed class RetentionTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private async Task<long> CountAsync(string schema, string table) =>
        await db.ScalarAsync<long>($"SELECT count(*) FROM {schema}.{table}");

    private async Task SetCursorAsync(string schema, string consumer, long position) =>
        await db.ExecuteAsync($"INSERT INTO {schema}.consumers (name, position, event_id) VALUES (@name, @position, 9223372036854775807) " +
            "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, event_id = EXCLUDED.event_id",
            ("name", consumer), ("position", position));

    [Fact]
    public async Task Purge_deletes_only_old_events_every_registered_consumer_has_passed_and_unregistering_releases_the_rest()
    {
        var schema = await db.InstallAsync("retained");
        await db.ExecuteAsync("CREATE TABLE retained_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await schema.TrackTableAsync(new TableName("public", "retained_items"));
        for (var i = 1; i <= 20; i++)
        {
            await db.ExecuteAsync($"INSERT INTO retained_items VALUES ({i}, 'x')");
        }

        await SetCursorAsync("retained", "fast", 20);
        await SetCursorAsync("retained", "slow", 8);

        (await schema.PurgeAsync(TimeSpan.FromHours(1))).Should().Be(0, "nothing is an hour old yet");
        (await schema.PurgeAsync(TimeSpan.Zero, batchSize: 3)).Should().Be(7, "positions below the slowest cursor (1..7)");
        (await db.ScalarAsync<long>("SELECT min(position) FROM retained.transactions")).Should().Be(8);
        (await db.ScalarAsync<long>("SELECT purged_through FROM retained.settings")).Should().Be(7);

        (await schema.UnregisterConsumerAsync("slow")).Should().BeTrue();
        (await schema.PurgeAsync(TimeSpan.Zero)).Should().Be(12, "now only the fast consumer holds retention back (8..19)");
        (await CountAsync("retained", "events")).Should().Be(1);
        var fast = (await schema.GetConsumersAsync()).Should().ContainSingle().Subject;
        (fast.ConsumerName, fast.Position, fast.EventId).Should().Be(("fast", 20L, long.MaxValue));
        fast.RegisteredAt.Should().BeCloseTo(DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5));
        fast.UpdatedAt.Should().BeOnOrAfter(fast.RegisteredAt);
    }

    [Fact]
    public async Task A_consumer_registered_after_a_purge_starts_at_the_oldest_kept_event_without_waiting_on_the_purged_range()
    {
        await db.ExecuteAsync("CREATE TABLE late_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using (var early = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, RecordingHandler<Item>>("late_items"),
                         o => { o.ConsumerName = "early"; o.SchemaName = "late_log"; }).StartAsync())
        {
            await db.ExecuteAsync("INSERT INTO late_items SELECT g, 'x' FROM generate_series(1, 5) g");
            for (var i = 6; i <= 10; i++)
            {
                await db.ExecuteAsync($"INSERT INTO late_items VALUES ({i}, 'x')");
            }

            await early.Sink.WaitForCountAsync(10);
            await early.StopAsync();
        }

        // Pretend the early consumer passed only the first transaction (ids 1..5) and purge.
        await SetCursorAsync("late_log", "early", 2);
        var schema = new PgEventsSchema(db.DataSource, new PgEventsSchemaOptions { SchemaName = "late_log" });
        (await schema.PurgeAsync(TimeSpan.Zero)).Should().Be(5);

        await using var late = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, RecordingHandler<Item>>("late_items"),
            o => { o.ConsumerName = "late"; o.SchemaName = "late_log"; }).StartAsync();
        await late.Sink.WaitForCountAsync(5);

        FaultHelpers.Ids(late.Sink).Should().Equal(6, 7, 8, 9, 10);
    }

    [Fact]
    public async Task A_running_consumer_purges_the_log_in_the_background_once_events_are_old_enough()
    {
        await db.ExecuteAsync("CREATE TABLE background_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, RecordingHandler<Item>>("background_items"),
            o =>
            {
                o.ConsumerName = "janitor";
                o.Retention.Age = TimeSpan.Zero;
                o.Retention.Interval = TimeSpan.FromMilliseconds(50);
                o.PollInterval = TimeSpan.FromMilliseconds(50);
            }).StartAsync();

        for (var i = 1; i <= 5; i++)
        {
            await db.ExecuteAsync($"INSERT INTO background_items VALUES ({i}, 'x')");
        }

        await host.Sink.WaitForCountAsync(5);

        // Everything but the transaction holding the cursor goes (retention keeps position = cursor).
        await Eventually.UntilAsync(async () => await CountAsync("log_janitor", "transactions") <= 1,
            "the background retention pass should run");

        (await CountAsync("log_janitor", "events")).Should().Be(1);
    }

    [Fact]
    public async Task Retention_keeps_running_while_a_steady_stream_never_lets_the_consumer_run_dry()
    {
        await db.ExecuteAsync("CREATE TABLE stream_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, SlowHandler>("stream_items"),
            o =>
            {
                o.ConsumerName = "stream_janitor";
                o.Retention.Age = TimeSpan.Zero;
                o.Retention.Interval = TimeSpan.FromMilliseconds(50);
                o.BatchSize = 10;
            }).StartAsync();

        // The writer stays far ahead of a handler that takes 2 ms per event, so every read returns
        // a full batch until the test ends.
        // Many transactions: retention removes whole transactions the consumer has passed.
        await db.ExecuteAsync(
            """
            DO $$
            BEGIN
                FOR t IN 0..399 LOOP
                    INSERT INTO stream_items SELECT t * 25 + g, 'x' FROM generate_series(1, 25) g;
                    COMMIT;
                END LOOP;
            END $$
            """);
        await host.Sink.WaitForCountAsync(50);

        await Eventually.UntilAsync(async () => await db.ScalarAsync<long>("SELECT purged_through FROM log_stream_janitor.settings") != 0,
            "retention must not wait for the consumer to run dry");

        var status = await host.Consumer.GetStatusAsync();
        status.LagEvents.Should().BeGreaterThan(0, "the consumer is still busy with the stream");
    }
}

/// <summary>Records each change after 2 ms of work: a consumer that cannot keep up.</summary>
public sealed class SlowHandler(EventSink sink) : IRowHandler<Item>
{
    public async Task HandleAsync(RowChange<Item> change, CancellationToken cancellationToken)
    {
        await Task.Delay(2, cancellationToken);
        sink.Record("slow", change);
    }
}
