using System.Text.Json;
using System.Text.Json.Serialization;
using NpgsqlTypes;
using PgEvents.UnitTests.Infrastructure;

namespace PgEvents.UnitTests.Handlers.Json;

public sealed record BytesRow(byte[] Data);

public sealed record SpanRow(TimeSpan Span);

public sealed record IntervalRow(NpgsqlInterval Span);

public sealed record MomentRow(DateTimeOffset At);

public sealed record InstantRow(DateTime At);

public sealed record AmountRow(decimal N);

public sealed record RangeRow(NpgsqlRange<DateTime> R);

public sealed class PostgresTextConverterTests
{
    private readonly RowDeserializer _deserializer = new(RowDeserializer.CreateDefaultOptions());

    private T Read<T>(string column, string valueJson) => _deserializer.Deserialize<T>(Events.Captured(), $$"""{"{{column}}": {{valueJson}}}""", "row")!;

    [Theory]
    [InlineData("0", 0, 0, 0L)]
    [InlineData("00:00:00", 0, 0, 0L)]
    [InlineData("-1 days +02:03:04", 0, -1, 7_384_000_000L)]
    [InlineData("1 year 2 mons -3 days -04:05:06.5", 14, -3, -14_706_500_000L)]
    [InlineData("-1 years +2 mons", -10, 0, 0L)]
    [InlineData("@ 1 day -2 hours -3 mins -4 secs ago", 0, -1, 7_384_000_000L)]
    [InlineData("@ 0.000001 secs ago", 0, 0, -1L)]
    [InlineData("@ 0", 0, 0, 0L)]
    [InlineData("+0-0 -1 +2:03:04", 0, -1, 7_384_000_000L)]
    [InlineData("-3 4:05:06.5", 0, -3, -14_706_500_000L)]
    [InlineData("+0-1 -1 +0:00:00", 1, -1, 0L)]
    [InlineData("-1-2", -14, 0, 0L)]
    [InlineData("-0:00:00.000001", 0, 0, -1L)]
    [InlineData("3 0:00:00", 0, 3, 0L)]
    [InlineData("P1Y2M3DT4H5M6.789S", 14, 3, 14_706_789_000L)]
    [InlineData("P-1DT2H3M4S", 0, -1, 7_384_000_000L)]
    [InlineData("PT-0.000001S", 0, 0, -1L)]
    [InlineData("PT0S", 0, 0, 0L)]
    public void Intervals_read_in_every_IntervalStyle(string text, int months, int days, long microseconds)
    {
        Read<IntervalRow>("span", JsonSerializer.Serialize(text)).Span.Should().Be(new NpgsqlInterval(months, days, microseconds));
    }

    [Fact]
    public void A_TimeSpan_refuses_an_interval_with_months_naming_the_value_and_the_column()
    {
        var read = () => Read<SpanRow>("span", "\"P1M\"");

        read.Should().Throw<PgEventsException>().WithMessage("*at column 'span'*interval 'P1M' has months or years*NpgsqlInterval*");
    }

    [Fact]
    public void Timestamptz_offsets_with_seconds_read_as_the_same_instant_in_UTC()
    {
        Read<InstantRow>("at", "\"1850-01-02T03:23:37+00:19:32\"").At.Should().Be(new DateTime(1850, 1, 2, 3, 4, 5, DateTimeKind.Utc));
        Read<MomentRow>("at", "\"2024-01-01T23:34:05-03:30\"").At.Should().Be(new DateTimeOffset(2024, 1, 2, 3, 4, 5, TimeSpan.Zero));
    }

    [Theory]
    [InlineData("\"2024-01-02T03:04:05\"", "*has no time zone*DateTime*timestamptz*")]
    [InlineData("\"0044-03-01 BC\"", "*before the year 1*string*")]
    public void Values_that_would_be_guessed_or_do_not_fit_are_refused(string json, string message)
    {
        var read = () => Read<MomentRow>("at", json);

        read.Should().Throw<PgEventsException>().WithMessage(message);
    }

    [Theory]
    [InlineData("\"NaN\"", "NaN does not fit a decimal*double*")]
    [InlineData("\"-Infinity\"", "-Infinity does not fit a decimal*")]
    [InlineData("0.123456789012345678901234567890123", "*more digits than a decimal holds*")]
    public void Numerics_that_do_not_fit_a_decimal_are_refused_rather_than_rounded(string json, string message)
    {
        var read = () => Read<AmountRow>("n", json);

        read.Should().Throw<PgEventsException>().WithMessage("*at column 'n'*" + message);
    }

    [Fact]
    public void Range_bounds_written_under_a_non_ISO_DateStyle_are_refused_as_ambiguous()
    {
        var read = () => Read<RangeRow>("r", "\"[\\\"02/01/2024 08:34:05 IST\\\",)\"");

        read.Should().Throw<PgEventsException>().WithMessage("*02/01/2024 08:34:05 IST*DateStyle*");
    }

    [Fact]
    public void Replaced_options_still_read_PostgreSQL_text_and_are_not_changed()
    {
        var mine = new JsonSerializerOptions { PropertyNameCaseInsensitive = true };
        var deserializer = new RowDeserializer(mine);

        deserializer.Deserialize<BytesRow>(Events.Captured(), """{"data": "\\x00ff"}""", "row")!.Data.Should().Equal(0, 255);
        mine.Converters.Should().BeEmpty();
    }

    [Fact]
    public void A_converter_of_the_callers_for_the_same_type_wins()
    {
        var mine = new JsonSerializerOptions { PropertyNameCaseInsensitive = true, Converters = { new Base64Converter() } };
        var deserializer = new RowDeserializer(mine);

        deserializer.Deserialize<BytesRow>(Events.Captured(), """{"data": "AP8="}""", "row")!.Data.Should().Equal(0, 255);
    }

    private sealed class Base64Converter : JsonConverter<byte[]>
    {
        public override byte[] Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetBytesFromBase64();

        public override void Write(Utf8JsonWriter writer, byte[] value, JsonSerializerOptions options) => writer.WriteBase64StringValue(value);
    }
}
