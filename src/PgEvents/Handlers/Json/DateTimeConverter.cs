using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads <c>timestamptz</c> as a UTC <see cref="DateTime"/>, <c>timestamp</c> and <c>date</c> as an
/// Unspecified one, and <c>±infinity</c> as <see cref="DateTime.MaxValue"/> / <see cref="DateTime.MinValue"/>,
/// as Npgsql does. The offset in the text is the writer's session time zone, so it is converted
/// away rather than turned into the consumer's local time.
/// </summary>
internal sealed class DateTimeConverter : JsonConverter<DateTime>
{
    public override DateTime Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var value = PgTimestampText.Parse(JsonText.ReadString(ref reader, "a date or timestamp"));
        return value switch
        {
            { Infinity: PgTimestampText.Infinity.Positive } => DateTime.MaxValue,
            { Infinity: PgTimestampText.Infinity.Negative } => DateTime.MinValue,
            { Offset: not null } => value.Utc,
            _ => value.Local,
        };
    }

    public override void Write(Utf8JsonWriter writer, DateTime value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.ToString("O", CultureInfo.InvariantCulture));
}
