using System.Text.Json;
using System.Text.Json.Serialization;
using NpgsqlTypes;

namespace PgEvents;

/// <summary>Reads <c>interval</c> (in any IntervalStyle) into <see cref="NpgsqlInterval"/>, which keeps months, days and time apart as PostgreSQL does.</summary>
internal sealed class NpgsqlIntervalConverter : JsonConverter<NpgsqlInterval>
{
    public override NpgsqlInterval Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var value = PgIntervalText.Parse(JsonText.ReadString(ref reader, "an interval"));
        return new NpgsqlInterval(value.Months, value.Days, value.Microseconds);
    }

    public override void Write(Utf8JsonWriter writer, NpgsqlInterval value, JsonSerializerOptions options) =>
        writer.WriteStringValue(PgIntervalText.Format(new PgIntervalText.Value(value.Months, value.Days, value.Time)));
}
