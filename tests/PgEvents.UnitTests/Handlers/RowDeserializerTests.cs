using System.Text.Json;
using PgEvents.UnitTests.Infrastructure;

namespace PgEvents.UnitTests.Handlers;

public sealed class RowDeserializerTests
{
    private readonly RowDeserializer _deserializer = new(RowDeserializer.CreateDefaultOptions());

    [Fact]
    public void Snake_case_columns_fill_pascal_case_properties_and_enums_bind_by_name()
    {
        const string json = """{"id": 7, "customer_name": "Ada", "quantity": "3", "state": "Shipped", "created_at": "2025-01-02T03:04:05+00:00"}""";

        var order = _deserializer.Deserialize<Order>(Events.Captured(), json, "row");

        order.Should().Be(new Order(7, "Ada", 3, OrderState.Shipped, new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero)));
    }

    [Fact]
    public void Column_names_match_properties_case_insensitively()
    {
        var customer = _deserializer.Deserialize<Customer>(Events.Captured(), """{"ID": 1, "NAME": "Bob"}""", "row");

        customer.Should().Be(new Customer(1, "Bob"));
    }

    [Fact]
    public void A_missing_image_gives_the_default_value()
    {
        _deserializer.Deserialize<Customer>(Events.Captured(), null, "old row").Should().BeNull();
        _deserializer.Deserialize<int>(Events.Captured(), null, "old row").Should().Be(0);
    }

    [Fact]
    public void A_row_that_does_not_deserialize_names_the_image_table_position_type_and_column()
    {
        var captured = Events.Captured(schema: "Sales", table: "Order Items", position: 12, eventId: 3);

        var deserialize = () => _deserializer.Deserialize<Order>(captured, """{"id": 1, "quantity": "many"}""", "old row");

        deserialize.Should().Throw<PgEventsException>()
            .WithMessage("The old row of \"Sales\".\"Order Items\" at position 12/3 does not deserialize into PgEvents.UnitTests.Handlers.Order at column 'quantity'*Fix the row type*")
            .WithInnerException<JsonException>();
    }

    [Fact]
    public void Malformed_JSON_is_reported_the_same_way()
    {
        var deserialize = () => _deserializer.Deserialize<Customer>(Events.Captured(), "{not json", "row");

        deserialize.Should().Throw<PgEventsException>()
            .WithMessage("The row of \"public\".\"orders\" at position 12/3 does not deserialize into PgEvents.UnitTests.Handlers.Customer*");
    }

    [Fact]
    public void A_row_type_System_Text_Json_cannot_create_is_reported_naming_the_type()
    {
        var deserialize = () => _deserializer.Deserialize<IDisposable>(Events.Captured(), "{}", "row");

        deserialize.Should().Throw<PgEventsException>()
            .WithMessage("*does not deserialize into System.IDisposable*")
            .WithInnerException<NotSupportedException>();
    }

    [Fact]
    public void Unknown_enum_names_are_refused_rather_than_guessed()
    {
        var deserialize = () => _deserializer.Deserialize<Order>(Events.Captured(), """{"state": "Lost"}""", "row");

        deserialize.Should().Throw<PgEventsException>().WithMessage("*at column 'state'*");
    }
}
