using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads <c>interval</c> (in any IntervalStyle) and <c>time</c> into <see cref="TimeSpan"/>, as Npgsql
/// does: days count as 24 hours, and an interval with months is refused, since a month has no fixed
/// length (Npgsql refuses it too).
/// </summary>
internal sealed class TimeSpanConverter : JsonConverter<TimeSpan>
{
    public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "an interval or time");
        var value = PgIntervalText.Parse(text);
        if (value.Months != 0)
        {
            throw new JsonException(
                $"interval '{text}' has months or years, which a TimeSpan cannot hold (a month has no fixed length); map the column to " +
                "NpgsqlInterval or string, or keep months out of it (justify_days, or extract(epoch …) in the writer).");
        }

        try
        {
            return TimeSpan.FromTicks(checked((value.Days * TimeSpan.TicksPerDay) + (value.Microseconds * 10)));
        }
        catch (OverflowException e)
        {
            throw new JsonException($"interval '{text}' is longer than a TimeSpan can hold; map the column to NpgsqlInterval or string.", e);
        }
    }

    public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) =>
        writer.WriteStringValue(PgIntervalText.Format(new PgIntervalText.Value(0, value.Days, (value.Ticks - (value.Days * TimeSpan.TicksPerDay)) / 10)));
}
