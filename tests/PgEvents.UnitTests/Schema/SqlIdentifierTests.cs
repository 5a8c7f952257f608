namespace PgEvents.UnitTests.Schema;

public sealed class SqlIdentifierTests
{
    [Theory]
    [InlineData("orders", "\"orders\"")]
    [InlineData("Order Items", "\"Order Items\"")]
    [InlineData("weird\"name", "\"weird\"\"name\"")]
    [InlineData("\"", "\"\"\"\"")]
    [InlineData("it's; DROP TABLE x", "\"it's; DROP TABLE x\"")]
    public void Quote_keeps_case_and_spaces_and_doubles_embedded_quotes(string identifier, string quoted) =>
        SqlIdentifier.Quote(identifier).Should().Be(quoted);

    [Fact]
    public void An_identifier_of_63_bytes_is_kept()
    {
        var name = new string('x', 63);

        SqlIdentifier.Validate(name, "name").Should().Be(name);
    }

    [Fact]
    public void Length_is_counted_in_UTF8_bytes_as_PostgreSQL_does()
    {
        var thirtyTwoUmlauts = new string('ä', 32); // 32 characters, 64 bytes

        var validate = () => SqlIdentifier.Validate(thirtyTwoUmlauts, "table");

        validate.Should().Throw<ArgumentException>().WithMessage("*longer than 63 bytes*").Which.ParamName.Should().Be("table");
    }

    [Theory]
    [InlineData(null, "*cannot be null or empty*")]
    [InlineData("", "*cannot be null or empty*")]
    [InlineData("a\0b", "*'a\\0b' contains a NUL character*")]
    public void Empty_names_and_NUL_characters_are_refused_naming_the_parameter(string? identifier, string message)
    {
        var validate = () => SqlIdentifier.Validate(identifier, "SchemaName");

        validate.Should().Throw<ArgumentException>().WithMessage(message).Which.ParamName.Should().Be("SchemaName");
    }

    [Fact]
    public void Quote_refuses_what_Validate_refuses()
    {
        var quote = () => SqlIdentifier.Quote(new string('q', 64));

        quote.Should().Throw<ArgumentException>();
    }

    [Theory]
    [InlineData("it's")]
    [InlineData("$body$")]
    [InlineData("a$b")]
    public void Schema_names_with_a_quote_or_dollar_are_refused_with_a_clear_error(string schema)
    {
        var validate = () => SqlIdentifier.ValidateSchemaName(schema, "SchemaName");

        validate.Should().Throw<ArgumentException>()
            .WithMessage($"*PgEvents schema name '{schema}' contains a ' or $ character*choose a name without them*")
            .Which.ParamName.Should().Be("SchemaName");
    }

    [Theory]
    [InlineData("pgevents")]
    [InlineData("Event Log")]
    [InlineData("with\"quote")]
    public void Schema_names_without_a_quote_or_dollar_are_accepted(string schema) =>
        SqlIdentifier.ValidateSchemaName(schema, "SchemaName").Should().Be(schema);

    [Fact]
    public void Schema_names_get_the_general_identifier_checks_too()
    {
        var validate = () => SqlIdentifier.ValidateSchemaName("", "SchemaName");

        validate.Should().Throw<ArgumentException>().WithMessage("*cannot be null or empty*");
    }
}
