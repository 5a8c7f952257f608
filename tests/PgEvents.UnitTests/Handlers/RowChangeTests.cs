using Npgsql;
using PgEvents.UnitTests.Infrastructure;

namespace PgEvents.UnitTests.Handlers;

public sealed class RowChangeTests : IDisposable
{
    private static readonly Order Ada = new(1, "Ada", 2, OrderState.Open, Events.Committed);

    private readonly NpgsqlConnection _neverOpened = new();

    public void Dispose() => _neverOpened.Dispose();

    private RowChange<TRow> Change<TRow>(CapturedEvent captured, TRow? row, TRow? oldRow = default) =>
        new(captured, row, oldRow, new EventTransactionScope(_neverOpened));

    [Fact]
    public void A_typed_change_names_its_table_with_a_TableName_as_the_untyped_change_does()
    {
        var captured = Events.Captured(schema: "Sales", table: "Order Items", position: 40, eventId: 2);

        var change = Change(captured, Ada);

        change.Table.Should().Be(new TableName("Sales", "Order Items"));
        change.Table.Should().Be(new RowChange(captured, new RowDeserializer(RowDeserializer.CreateDefaultOptions())).Table);
        change.ToString().Should().Be("Insert \"Sales\".\"Order Items\" at 40/2");
    }
}
