using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads <c>timestamptz</c> as a <see cref="DateTimeOffset"/> in UTC (the text's offset is only the
/// writer's session time zone), <c>timetz</c> at its own offset on 0001-01-02, and <c>±infinity</c> as
/// <see cref="DateTimeOffset.MaxValue"/> / <see cref="DateTimeOffset.MinValue"/>, as Npgsql does. A
/// <c>timestamp</c> or <c>date</c> has no offset, and guessing one would shift the instant: refused.
/// </summary>
internal sealed class DateTimeOffsetConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "a timestamptz or timetz");
        if (text.Length > 2 && text[2] == ':')
        {
            return PgTimestampText.ParseTimeWithZone(text);
        }

        var value = PgTimestampText.Parse(text);
        return value switch
        {
            { Infinity: PgTimestampText.Infinity.Positive } => DateTimeOffset.MaxValue,
            { Infinity: PgTimestampText.Infinity.Negative } => DateTimeOffset.MinValue,
            { Offset: not null } => new DateTimeOffset(value.Utc),
            _ => throw new JsonException(
                $"'{text}' has no time zone (a timestamp or date column), so a DateTimeOffset would have to guess one; map it to DateTime (or DateOnly), or make the column timestamptz."),
        };
    }

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}
