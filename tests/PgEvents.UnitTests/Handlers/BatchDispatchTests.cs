using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using PgEvents.UnitTests.Infrastructure;

namespace PgEvents.UnitTests.Handlers;

/// <summary>How one delivery unit reaches row handlers and batch handlers, without a database.</summary>
public sealed class BatchDispatchTests : IDisposable
{
    private static readonly TableName Orders = new("public", "orders");
    private static readonly TableName Customers = new("public", "customers");

    private readonly ServiceProvider _services;
    private readonly PgEventsMetrics _metrics = new();
    private readonly NpgsqlConnection _neverOpened = new();

    public BatchDispatchTests()
    {
        var services = new ServiceCollection();
        services.AddSingleton<Recorder>();
        services.AddSingleton<List<string>>();
        services.AddScoped<OrderHandler>();
        services.AddScoped<RecordingBatchHandler>();
        _services = services.BuildServiceProvider();
    }

    public void Dispose()
    {
        _neverOpened.Dispose();
        _metrics.Dispose();
        _services.Dispose();
    }

    private EventDispatcher Dispatcher(PgEventsOptions options, params HandlerRegistration[] registrations) =>
        new(options, new HandlerMap(registrations), _services.GetRequiredService<IServiceScopeFactory>(),
            new RowDeserializer(RowDeserializer.CreateDefaultOptions()), _metrics, new FakeTimeProvider());

    private static string OrderRow(long id) =>
        $$"""{"id": {{id}}, "customer_name": "Ada", "quantity": 1, "state": "Open", "created_at": "2025-01-02T03:04:05Z"}""";

    [Fact]
    public async Task A_batch_handler_gets_the_changes_of_all_its_tables_in_one_call_in_delivery_order()
    {
        var dispatcher = Dispatcher(new PgEventsOptions(),
            HandlerRegistration.CreateBatch<RecordingBatchHandler>(Orders),
            HandlerRegistration.CreateBatch<RecordingBatchHandler>(Customers));
        var unit = new DeliveryUnit(
            [
                Events.Captured(table: "customers", position: 1, eventId: 1, row: """{"id": 7, "name": "Ada"}"""),
                Events.Captured(table: "orders", position: 1, eventId: 2, row: OrderRow(70)),
                Events.Captured(table: "orders", position: 2, eventId: 1, kind: ChangeKind.Delete, row: OrderRow(70)),
            ],
            endsTransaction: true);

        await dispatcher.DispatchAsync(_neverOpened, unit, (_, _) => Task.CompletedTask, CancellationToken.None);

        _services.GetRequiredService<List<string>>().Should().Equal(
            "batch of 3 ending a transaction",
            "Insert \"public\".\"customers\" 1/1 Ada",
            "Insert \"public\".\"orders\" 1/2 70",
            "Delete \"public\".\"orders\" 2/1 70");
    }

    [Fact]
    public async Task Row_handlers_run_per_event_and_the_batch_handler_once_with_only_its_own_tables()
    {
        var dispatcher = Dispatcher(new PgEventsOptions(),
            HandlerRegistration.Create<Order, OrderHandler>(Orders),
            HandlerRegistration.CreateBatch<RecordingBatchHandler>(Customers));
        var unit = new DeliveryUnit(
            [
                Events.Captured(table: "orders", position: 1, eventId: 1, row: OrderRow(1)),
                Events.Captured(table: "customers", position: 2, eventId: 1, row: """{"id": 8, "name": "Bob"}"""),
                Events.Captured(table: "orders", position: 3, eventId: 1, row: OrderRow(2)),
            ],
            endsTransaction: false);

        await dispatcher.DispatchAsync(_neverOpened, unit, (_, _) => Task.CompletedTask, CancellationToken.None);

        _services.GetRequiredService<Recorder>().Calls.Select(c => ((Order)c.Row!).Id).Should().Equal(1, 2);
        _services.GetRequiredService<List<string>>().Should().Equal("batch of 1 not ending a transaction", "Insert \"public\".\"customers\" 2/1 Bob");
    }

    [Fact]
    public async Task An_unmapped_table_in_a_batch_fails_it_unless_the_policy_skips_it()
    {
        var unit = new DeliveryUnit(
            [Events.Captured(table: "refunds", position: 1, eventId: 1), Events.Captured(table: "customers", position: 1, eventId: 2, row: """{"id": 9, "name": "Cy"}""")],
            endsTransaction: true);
        var blocking = Dispatcher(new PgEventsOptions(), HandlerRegistration.CreateBatch<RecordingBatchHandler>(Customers));
        var skipping = Dispatcher(new PgEventsOptions { UnmappedTablePolicy = UnmappedTablePolicy.Skip }, HandlerRegistration.CreateBatch<RecordingBatchHandler>(Customers));

        var blocked = () => blocking.DispatchAsync(_neverOpened, unit, (_, _) => Task.CompletedTask, CancellationToken.None);
        await blocked.Should().ThrowAsync<PgEventsException>().WithMessage("No handler is registered for table \"public\".\"refunds\"*");
        _services.GetRequiredService<List<string>>().Should().BeEmpty("nothing of a failed batch is handed out");

        await skipping.DispatchAsync(_neverOpened, unit, (_, _) => Task.CompletedTask, CancellationToken.None);
        _services.GetRequiredService<List<string>>().Should().Equal("batch of 1 ending a transaction", "Insert \"public\".\"customers\" 1/2 Cy");
    }

    [Fact]
    public void A_delivery_unit_describes_its_range_for_logs()
    {
        DeliveryUnit.Of(Events.Captured(position: 5, eventId: 12)).ToString().Should().Be("5/12");
        new DeliveryUnit([Events.Captured(position: 5, eventId: 12), Events.Captured(position: 9, eventId: 3)], endsTransaction: true)
            .ToString().Should().Be("5/12..9/3 (2 events)");
    }

    public sealed class RecordingBatchHandler(List<string> log) : IBatchHandler
    {
        public Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
        {
            log.Add($"batch of {batch.Count} {(batch.EndsAtTransactionBoundary ? "ending" : "not ending")} a transaction");
            foreach (var change in batch)
            {
                var key = change.Table == Orders ? change.GetRow<Order>()!.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) : change.GetRow<Customer>()!.Name;
                log.Add($"{change.Kind} {change.Table} {change.Position}/{change.EventId} {key}");
            }

            return Task.CompletedTask;
        }
    }
}
