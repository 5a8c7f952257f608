namespace PgEvents.Tests.Capture;

public sealed class TableNameTests
{
    [Theory]
    [InlineData("orders", "public", "orders")]
    [InlineData("sales.orders", "sales", "orders")]
    [InlineData("Order Items", "public", "Order Items")]
    [InlineData("Sales.Order Items", "Sales", "Order Items")]
    [InlineData("\"my.schema\".\"a.b\"", "my.schema", "a.b")]
    [InlineData("\"say \"\"hi\"\"\".t", "say \"hi\"", "t")]
    [InlineData("weird\"name", "public", "weird\"name")]
    public void Parse_takes_parts_literally_and_defaults_to_public(string text, string schema, string name)
    {
        var table = TableName.Parse(text);

        table.Schema.Should().Be(schema);
        table.Name.Should().Be(name);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a.b.c")]
    [InlineData(".orders")]
    [InlineData("orders.")]
    [InlineData("\"unclosed.orders")]
    [InlineData("\"quoted\"tail.orders")]
    public void Parse_rejects_malformed_names_naming_the_input(string text)
    {
        var parse = () => TableName.Parse(text);

        parse.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void Names_longer_than_PostgreSQL_keeps_are_rejected_instead_of_silently_truncated()
    {
        var create = () => new TableName("public", new string('x', 64));

        create.Should().Throw<ArgumentException>().WithMessage("*longer than 63 bytes*");
    }

    [Fact]
    public void ToString_quotes_both_parts_doubling_embedded_quotes()
    {
        new TableName("My Schema", "weird\"name").ToString().Should().Be("\"My Schema\".\"weird\"\"name\"");
    }

    [Fact]
    public void The_default_value_prints_without_throwing()
    {
        default(TableName).ToString().Should().Be("(no table name)");
    }
}
