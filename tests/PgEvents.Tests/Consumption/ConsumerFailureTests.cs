using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

public sealed record Item(long Id, string Label) : ITestRow;

public sealed record PricedItem(long Id, decimal Price);

/// <summary>Writes a projection row in the cursor's transaction, then fails the first attempt of each event.</summary>
public sealed class TransactionalProjectionHandler(FailureSwitch failures) : IRowHandler<Item>
{
    private static readonly HashSet<long> Failed = [];

    public async Task HandleAsync(RowChange<Item> change, CancellationToken cancellationToken)
    {
        var transaction = await change.GetTransactionAsync(cancellationToken);
        await using var insert = new Npgsql.NpgsqlCommand("INSERT INTO projection (event_id, label) VALUES (@id, @label)", transaction.Connection, transaction);
        insert.Parameters.AddWithValue("id", change.EventId);
        insert.Parameters.AddWithValue("label", change.Row!.Label);
        await insert.ExecuteNonQueryAsync(cancellationToken);
        lock (Failed)
        {
            if (Failed.Add(change.EventId))
            {
                failures.Attempt();
                throw new InvalidOperationException("fails after writing, so the write must roll back");
            }
        }
    }
}

public sealed class ConsumerFailureTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly Action<IServiceCollection> WithSwitch = s => s.AddSingleton<FailureSwitch>();

    private async Task InsertItemsAsync(string table, IEnumerable<int> ids)
    {
        foreach (var id in ids)
        {
            await db.ExecuteAsync($"INSERT INTO {table} VALUES ({id}, 'item {id}')");
        }
    }

    [Fact]
    public async Task A_failing_handler_blocks_its_event_and_everything_after_until_it_succeeds_then_resumes_in_order()
    {
        await db.ExecuteAsync("CREATE TABLE blocking_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, SwitchedHandler<Item>>("blocking_items"),
            o => o.ConsumerName = "blocking", services: WithSwitch);
        var failures = host.Services.GetRequiredService<FailureSwitch>();
        failures.FailingId = 3;
        await host.StartAsync();

        await InsertItemsAsync("blocking_items", Enumerable.Range(1, 6));
        await failures.WaitForAttemptsAsync(4);

        host.Sink.Deliveries.Select(d => ((Item)d.Row!).Id).Should().Equal(1, 2);
        var status = await host.Consumer.GetStatusAsync();
        status.Blocked.Should().NotBeNull();
        status.Blocked!.Attempts.Should().BeGreaterThanOrEqualTo(4);
        status.Blocked.LastError.Should().Contain("boom on item 3");
        status.Blocked.Table.Should().Be(new TableName("public", "blocking_items"));
        status.CursorEventId.Should().Be(host.Sink.Deliveries[1].EventId);
        (await db.ScalarAsync<long>("SELECT event_id FROM log_blocking.consumers WHERE name = 'blocking'"))
            .Should().Be(host.Sink.Deliveries[1].EventId, "progress before the blocked event is persisted");

        failures.Failing = false;
        await host.Sink.WaitForCountAsync(6);

        host.Sink.Deliveries.Select(d => ((Item)d.Row!).Id).Should().Equal(1, 2, 3, 4, 5, 6);
        (await host.Consumer.GetStatusAsync()).Blocked.Should().BeNull();
    }

    [Fact]
    public async Task An_event_of_a_table_this_consumer_does_not_map_is_not_its_business_and_blocks_nothing()
    {
        await db.ExecuteAsync("CREATE TABLE mapped_items (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE unmapped_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, RecordingHandler<Item>>("mapped_items"),
            o => o.ConsumerName = "unmapped_block").StartAsync();
        var schema = new PgEventsSchema(db.DataSource, new PgEventsSchemaOptions { SchemaName = "log_unmapped_block" });
        await schema.TrackTableAsync(new TableName("public", "unmapped_items"));

        await InsertItemsAsync("mapped_items", [1]);
        await InsertItemsAsync("unmapped_items", [2]);
        await InsertItemsAsync("mapped_items", [3]);
        await host.Sink.WaitForCountAsync(2);

        host.Sink.Deliveries.Select(d => ((Item)d.Row!).Id).Should().Equal(1, 3);
        var status = await host.Consumer.GetStatusAsync();
        status.Blocked.Should().BeNull("another consumer's table is filtered out of this consumer's reads (see SubscriptionTests for a removed handler)");
    }

    [Fact]
    public async Task An_event_of_an_unmapped_table_is_skipped_when_configured()
    {
        await db.ExecuteAsync("CREATE TABLE skip_mapped (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE skip_unmapped (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, RecordingHandler<Item>>("skip_mapped"),
            o => { o.ConsumerName = "unmapped_skip"; o.UnmappedTablePolicy = UnmappedTablePolicy.Skip; }).StartAsync();
        var schema = new PgEventsSchema(db.DataSource, new PgEventsSchemaOptions { SchemaName = "log_unmapped_skip" });
        await schema.TrackTableAsync(new TableName("public", "skip_unmapped"));

        await InsertItemsAsync("skip_mapped", [1]);
        await InsertItemsAsync("skip_unmapped", [2]);
        await InsertItemsAsync("skip_mapped", [3]);
        await host.Sink.WaitForCountAsync(2);

        host.Sink.Deliveries.Select(d => ((Item)d.Row!).Id).Should().Equal(1, 3);
    }

    [Fact]
    public async Task A_row_that_does_not_deserialize_blocks_with_the_column_and_type_in_the_error()
    {
        await db.ExecuteAsync("CREATE TABLE badly_typed (id bigint PRIMARY KEY, price numeric NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<PricedItem, RecordingHandler<PricedItem>>("badly_typed"),
            o => o.ConsumerName = "bad_json").StartAsync();

        // The mapping was valid at start; the table changed under the running consumer.
        await db.ExecuteAsync("INSERT INTO badly_typed VALUES (1, 12.5)");
        await db.ExecuteAsync("ALTER TABLE badly_typed ALTER COLUMN price TYPE text");
        await db.ExecuteAsync("INSERT INTO badly_typed VALUES (2, 'twelve'), (3, '3')");
        var status = await WaitForBlockedAsync(host);

        status.Blocked!.LastError.Should().Contain("price").And.Contain(typeof(PricedItem).FullName!).And.Contain("\"public\".\"badly_typed\"");
        host.Sink.Deliveries.Select(d => ((PricedItem)d.Row!).Price).Should().Equal(12.5m);
    }

    [Fact]
    public async Task Writes_through_the_handler_transaction_commit_with_the_cursor_and_roll_back_with_a_failure()
    {
        await db.ExecuteAsync("CREATE TABLE tx_items (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE projection (event_id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = ConsumerHost.Create(db.ConnectionString, b => b
                .AddHandler<Item, TransactionalProjectionHandler>("tx_items")
                .AddHandler<Item, RecordingHandler<Item>>("tx_items"),
            o => o.ConsumerName = "transactional", services: WithSwitch);
        var failures = host.Services.GetRequiredService<FailureSwitch>();
        await host.StartAsync();

        await InsertItemsAsync("tx_items", Enumerable.Range(1, 5));
        await failures.WaitForAttemptsAsync(5);
        await host.Sink.WaitForCountAsync(5);

        // The recording handler runs before the commit; wait for the cursor, not the handler.
        await Eventually.UntilAsync(async () => (await host.Consumer.GetStatusAsync()).CursorEventId == host.Sink.Deliveries[^1].EventId,
            "the cursor should reach the last delivered event");

        await host.StopAsync();

        // Each event failed once after writing its projection row: the rows that survive are exactly
        // one per event, and the cursor committed with the last of them.
        (await db.ScalarAsync<long>("SELECT count(*) FROM projection")).Should().Be(5);
        (await db.ScalarAsync<long>("SELECT count(DISTINCT event_id) FROM projection")).Should().Be(5);
        (await db.ScalarAsync<long>("SELECT event_id FROM log_transactional.consumers WHERE name = 'transactional'"))
            .Should().Be(await db.ScalarAsync<long>("SELECT max(event_id) FROM projection"));
    }

    private static Task<ConsumerStatus> WaitForBlockedAsync(ConsumerHost host) =>
        Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), status => status.Blocked is { Attempts: >= 2 },
            "the consumer should block on the bad event");
}
