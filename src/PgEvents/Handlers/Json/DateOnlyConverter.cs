using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>Reads <c>date</c>, with <c>±infinity</c> as <see cref="DateOnly.MaxValue"/> / <see cref="DateOnly.MinValue"/>, as Npgsql does.</summary>
internal sealed class DateOnlyConverter : JsonConverter<DateOnly>
{
    public override DateOnly Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "a date");
        var value = PgTimestampText.Parse(text);
        return value switch
        {
            { Infinity: PgTimestampText.Infinity.Positive } => DateOnly.MaxValue,
            { Infinity: PgTimestampText.Infinity.Negative } => DateOnly.MinValue,
            { HasTime: false } => DateOnly.FromDateTime(value.Local),
            _ => throw new JsonException($"'{text}' has a time of day, which DateOnly would drop; map it to DateTime."),
        };
    }

    public override void Write(Utf8JsonWriter writer, DateOnly value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString("O", CultureInfo.InvariantCulture));
}
