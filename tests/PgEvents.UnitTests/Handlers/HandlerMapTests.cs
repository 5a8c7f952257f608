namespace PgEvents.UnitTests.Handlers;

public sealed class HandlerMapTests
{
    private static readonly TableName Orders = new("public", "orders");
    private static readonly TableName Customers = new("public", "customers");

    [Fact]
    public void Handlers_of_a_table_come_in_registration_order()
    {
        var map = new HandlerMap([
            HandlerRegistration.Create<Order, AuditHandler>(Orders),
            HandlerRegistration.Create<Order, OrderHandler>(Orders),
        ]);

        map.For(Orders).Select(r => r.HandlerType).Should().Equal(typeof(AuditHandler), typeof(OrderHandler));
    }

    [Fact]
    public void Registering_the_same_table_row_type_and_handler_twice_keeps_one()
    {
        var map = new HandlerMap([
            HandlerRegistration.Create<Order, OrderHandler>(Orders),
            HandlerRegistration.Create<Order, AuditHandler>(Orders),
            HandlerRegistration.Create<Order, OrderHandler>(TableName.Parse("public.orders")),
        ]);

        map.For(Orders).Select(r => r.HandlerType).Should().Equal(typeof(OrderHandler), typeof(AuditHandler));
    }

    [Fact]
    public void One_handler_may_serve_several_tables_and_tables_are_listed_once()
    {
        var map = new HandlerMap([
            HandlerRegistration.Create<Order, AuditHandler>(Orders),
            HandlerRegistration.Create<Customer, AuditHandler>(Customers),
            HandlerRegistration.Create<Order, OrderHandler>(Orders),
        ]);

        map.Tables.Should().BeEquivalentTo([Orders, Customers]);
        map.For(Customers).Should().ContainSingle().Which.RowType.Should().Be<Customer>();
        map.For(Orders).Should().HaveCount(2);
    }

    [Fact]
    public void A_table_without_handlers_gets_none()
    {
        var map = new HandlerMap([HandlerRegistration.Create<Order, OrderHandler>(Orders)]);

        map.For(new TableName("public", "Orders")).Should().BeEmpty("names are case-sensitive");
        map.For(Customers).Should().BeEmpty();
    }

    [Fact]
    public void A_registration_reads_as_handler_row_type_and_table() =>
        HandlerRegistration.Create<Order, OrderHandler>(Orders).ToString().Should().Be("OrderHandler (Order) for \"public\".\"orders\"");
}
