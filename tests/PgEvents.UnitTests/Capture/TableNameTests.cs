namespace PgEvents.UnitTests.Capture;

public sealed class TableNameTests
{
    [Theory]
    [InlineData("orders", "public", "orders")]
    [InlineData("sales.orders", "sales", "orders")]
    [InlineData("Order Items", "public", "Order Items")]
    [InlineData("Sales.Order Items", "Sales", "Order Items")]
    [InlineData("\"my.schema\".\"a.b\"", "my.schema", "a.b")]
    [InlineData("\"quoted\".plain", "quoted", "plain")]
    [InlineData("plain.\"a.b\"", "plain", "a.b")]
    [InlineData("\"we\"\"ird\"", "public", "we\"ird")]
    [InlineData("\"say \"\"hi\"\"\".t", "say \"hi\"", "t")]
    [InlineData("weird\"name", "public", "weird\"name")]
    public void Parse_takes_parts_literally_and_unquotes_quoted_parts(string text, string schema, string name)
    {
        var table = TableName.Parse(text);

        (table.Schema, table.Name).Should().Be((schema, name));
    }

    [Theory]
    [InlineData("a.b.c", "*expected 'table' or 'schema.table'*")]
    [InlineData("\"unclosed.orders", "*unbalanced or misplaced double quote*")]
    [InlineData("\"quoted\"tail.orders", "*unbalanced or misplaced double quote*")]
    [InlineData("\"a\"\"", "*unbalanced or misplaced double quote*")]
    [InlineData("", "*cannot be null or empty*")]
    [InlineData(".orders", "*cannot be null or empty*")]
    [InlineData("orders.", "*cannot be null or empty*")]
    [InlineData("\"\"", "*cannot be null or empty*")]
    public void Parse_rejects_malformed_names_with_a_message_saying_why(string text, string message)
    {
        var parse = () => TableName.Parse(text);

        parse.Should().Throw<ArgumentException>().WithMessage(message);
    }

    [Fact]
    public void Parse_refuses_null()
    {
        var parse = () => TableName.Parse(null!);

        parse.Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void Names_are_case_sensitive()
    {
        TableName.Parse("Orders").Should().NotBe(TableName.Parse("orders"));
        TableName.Parse("public.orders").Should().Be(new TableName("public", "orders"));
    }

    [Fact]
    public void ToString_gives_the_quoted_schema_qualified_identifier()
    {
        new TableName("public", "Order Items").ToString().Should().Be("\"public\".\"Order Items\"");
        new TableName("public", "weird\"name").ToString().Should().Be("\"public\".\"weird\"\"name\"");
    }

    [Theory]
    [InlineData("public", "orders")]
    [InlineData("my.schema", "a.b")]
    [InlineData("say \"hi\"", "t\"")]
    [InlineData("Sales", "Order Items")]
    public void ToString_parses_back_to_the_same_name(string schema, string name)
    {
        var table = new TableName(schema, name);

        TableName.Parse(table.ToString()).Should().Be(table);
    }

    [Fact]
    public void The_default_value_prints_without_throwing()
    {
        var table = default(TableName);

        table.ToString().Should().Be("(no table name)");
        $"{table}".Should().Be("(no table name)");
    }

    [Fact]
    public void The_constructor_validates_each_part_naming_it()
    {
        var emptySchema = () => new TableName("", "orders");
        var longName = () => new TableName("public", new string('x', 64));

        emptySchema.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("schema");
        longName.Should().Throw<ArgumentException>().WithMessage("*longer than 63 bytes*").Which.ParamName.Should().Be("name");
    }
}
