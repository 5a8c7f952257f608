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

    [Theory]
    [InlineData(ChangeKind.Insert)]
    [InlineData(ChangeKind.Update)]
    [InlineData(ChangeKind.Delete)]
    [InlineData(ChangeKind.Snapshot)]
    public void A_change_with_a_row_has_one_and_the_compiler_knows_it_is_not_null(ChangeKind kind)
    {
        var change = Change(Events.Captured(kind: kind, row: """{"id": 1}"""), Ada);

        change.HasRow.Should().BeTrue();
        if (change.HasRow)
        {
            // Compiles without '!' under warnings-as-errors: that is the point of HasRow.
            Order row = change.Row;
            string json = change.RowJson;
            (row.Id, json).Should().Be((1L, """{"id": 1}"""));
        }
    }

    [Fact]
    public void A_truncate_has_no_row()
    {
        var change = Change<Order>(Events.Captured(kind: ChangeKind.Truncate, row: null), row: null);

        change.HasRow.Should().BeFalse();
    }

    [Fact]
    public void HasRow_tells_a_generic_handler_that_an_unconstrained_row_is_there()
    {
        // TRow is unconstrained on RowChange<TRow>: the attribute must also hold for a type parameter.
        static TRow RowOf<TRow>(RowChange<TRow> change) => change.HasRow ? change.Row : throw new InvalidOperationException("no row");

        RowOf(Change(Events.Captured(), Ada)).Should().BeSameAs(Ada);
        RowOf(Change(Events.Captured(), 42)).Should().Be(42);
    }

    [Fact]
    public void A_truncate_has_no_row_for_a_value_type_row_either()
    {
        // A value type's missing row is its default, not null: HasRow goes by the row image instead.
        var change = Change(Events.Captured(kind: ChangeKind.Truncate, row: null), row: 0);

        change.HasRow.Should().BeFalse();
    }
}
