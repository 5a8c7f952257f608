using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using NpgsqlTypes;

namespace PgEvents;

/// <summary>Reads <c>point</c> text (<c>(1.5,-2)</c>) into <see cref="NpgsqlPoint"/>.</summary>
internal sealed class NpgsqlPointConverter : JsonConverter<NpgsqlPoint>
{
    public override NpgsqlPoint Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "a point");
        var parts = text.Trim('(', ')').Split(',');
        return parts.Length == 2 &&
               double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var x) &&
               double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var y)
            ? new NpgsqlPoint(x, y)
            : throw new JsonException($"'{text}' is not a point.");
    }

    public override void Write(Utf8JsonWriter writer, NpgsqlPoint value, JsonSerializerOptions options) =>
        writer.WriteStringValue(string.Create(CultureInfo.InvariantCulture, $"({value.X},{value.Y})"));
}
