using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using PgEvents.UnitTests.Infrastructure;

namespace PgEvents.UnitTests.Handlers;

/// <summary>
/// Dispatch of handlers that never ask for the event's transaction: the connection is never used, so
/// an unopened one stands in for it.
/// </summary>
public sealed class EventDispatcherTests : IDisposable
{
    private static readonly TableName Orders = new("public", "orders");

    private readonly ServiceProvider _services;
    private readonly PgEventsMetrics _metrics;
    private readonly FakeTimeProvider _time = new();
    private readonly NpgsqlConnection _neverOpened = new();

    public EventDispatcherTests()
    {
        var services = new ServiceCollection().AddMetrics();
        services.AddSingleton<Recorder>();
        services.AddScoped<OrderHandler>();
        services.AddScoped<AuditHandler>();
        services.AddSingleton(new List<ScopeProbe>());
        services.AddScoped<ScopeProbe>();
        _services = services.BuildServiceProvider();
        _metrics = new PgEventsMetrics(_services.GetRequiredService<IMeterFactory>());
    }

    public void Dispose()
    {
        _neverOpened.Dispose();
        _metrics.Dispose();
        _services.Dispose();
    }

    private Recorder Recorder => _services.GetRequiredService<Recorder>();

    private EventDispatcher Dispatcher(params HandlerRegistration[] registrations) =>
        new(new PgEventsOptions { ConsumerName = "orders-sync" }, new HandlerMap(registrations), _services.GetRequiredService<IServiceScopeFactory>(),
            new RowDeserializer(RowDeserializer.CreateDefaultOptions()), _metrics, _time);

    private const string Row = """{"id": 1, "customer_name": "Ada", "quantity": 2, "state": "Open", "created_at": "2025-01-02T03:04:05Z"}""";
    private const string OldRow = """{"id": 1, "customer_name": "Ada", "quantity": 1, "state": "Open", "created_at": "2025-01-02T03:04:05Z"}""";

    [Fact]
    public async Task Every_handler_of_the_table_gets_the_deserialized_rows_in_registration_order()
    {
        var dispatcher = Dispatcher(
            HandlerRegistration.Create<Order, OrderHandler>(Orders),
            HandlerRegistration.Create<Order, AuditHandler>(Orders));
        var transactions = new List<NpgsqlTransaction?>();

        var committed = await dispatcher.DispatchAsync(
            _neverOpened,
            DeliveryUnit.Of(Events.Captured(kind: ChangeKind.Update, row: Row, oldRow: OldRow)),
            (transaction, _) => { transactions.Add(transaction); return Task.CompletedTask; },
            CancellationToken.None);

        committed.Should().BeFalse("no handler asked for the transaction");
        transactions.Should().Equal([null], "the caller's writes run once, outside a transaction");
        Recorder.Calls.Select(c => c.Handler).Should().Equal(nameof(OrderHandler), nameof(AuditHandler));
        Recorder.Calls.Should().OnlyContain(c =>
            c.Kind == ChangeKind.Update && ((Order)c.Row!).Quantity == 2 && ((Order)c.OldRow!).Quantity == 1);
    }

    [Fact]
    public async Task An_event_of_a_table_without_handlers_is_refused_with_how_to_fix_it()
    {
        var dispatcher = Dispatcher(HandlerRegistration.Create<Order, OrderHandler>(Orders));

        var dispatch = () => dispatcher.DispatchAsync(
            _neverOpened, DeliveryUnit.Of(Events.Captured(schema: "sales", table: "refunds", position: 40, eventId: 2)), (_, _) => Task.CompletedTask, CancellationToken.None);

        (await dispatch.Should().ThrowAsync<PgEventsException>())
            .WithMessage("No handler is registered for table \"sales\".\"refunds\" (event at position 40/2)*AddHandler<TRow, THandler>(\"sales.refunds\")*UnmappedTablePolicy*");
    }

    [Fact]
    public async Task Handler_duration_is_recorded_per_consumer_on_the_consumer_clock()
    {
        using var duration = new MetricCollector<double>(_services.GetRequiredService<IMeterFactory>(), "PgEvents", "pgevents.handler.duration");
        var dispatcher = Dispatcher(HandlerRegistration.Create<Order, OrderHandler>(Orders));

        await dispatcher.DispatchAsync(
            _neverOpened, DeliveryUnit.Of(Events.Captured(row: Row)), (_, _) => { _time.Advance(TimeSpan.FromSeconds(2)); return Task.CompletedTask; }, CancellationToken.None);

        duration.LastMeasurement!.Value.Should().Be(2);
        duration.LastMeasurement.Tags.Should().Contain("pgevents.consumer", "orders-sync");
    }

    [Fact]
    public async Task A_failing_handler_stops_the_event_and_its_time_is_still_recorded()
    {
        using var duration = new MetricCollector<double>(_services.GetRequiredService<IMeterFactory>(), "PgEvents", "pgevents.handler.duration");
        var dispatcher = Dispatcher(
            HandlerRegistration.Create<Order, OrderHandler>(Orders),
            HandlerRegistration.Create<Order, AuditHandler>(Orders));

        var dispatch = () => dispatcher.DispatchAsync(
            _neverOpened, DeliveryUnit.Of(Events.Captured(row: """{"quantity": "lots"}""")), (_, _) => Task.CompletedTask, CancellationToken.None);

        await dispatch.Should().ThrowAsync<PgEventsException>().WithMessage("*at column 'quantity'*");
        Recorder.Calls.Should().BeEmpty();
        duration.GetMeasurementSnapshot().Should().ContainSingle();
    }

    [Fact]
    public async Task Each_event_gets_its_own_scope_disposed_after_its_handlers_ran()
    {
        var dispatcher = Dispatcher(HandlerRegistration.Create<Order, ScopeProbe>(Orders));
        var probes = _services.GetRequiredService<List<ScopeProbe>>();

        await dispatcher.DispatchAsync(_neverOpened, DeliveryUnit.Of(Events.Captured(row: Row)), (_, _) => Task.CompletedTask, CancellationToken.None);
        await dispatcher.DispatchAsync(_neverOpened, DeliveryUnit.Of(Events.Captured(row: Row)), (_, _) => Task.CompletedTask, CancellationToken.None);

        probes.Should().HaveCount(2).And.OnlyHaveUniqueItems().And.OnlyContain(p => p.IsDisposed);
    }

    public sealed class ScopeProbe(List<ScopeProbe> probes) : IRowHandler<Order>, IDisposable
    {
        public bool IsDisposed { get; private set; }

        public Task HandleAsync(RowChange<Order> change, CancellationToken cancellationToken)
        {
            probes.Add(this);
            return Task.CompletedTask;
        }

        public void Dispose() => IsDisposed = true;
    }
}
