using System.Globalization;
using System.Numerics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads <c>float4</c> and <c>float8</c>, whose <c>NaN</c>, <c>Infinity</c> and <c>-Infinity</c>
/// <c>to_jsonb</c> writes as strings (JSON has no such numbers), into <see cref="float"/> or <see cref="double"/>.
/// Numbers written as strings (<c>oid</c> and friends) read too, whatever the options' NumberHandling.
/// </summary>
internal sealed class FloatingPointConverter<T> : JsonConverter<T>
    where T : struct, IFloatingPointIeee754<T>
{
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.Number)
        {
            var number = reader.GetDouble();
            var value = T.CreateChecked(number);
            return T.IsInfinity(value) && double.IsFinite(number)
                ? throw new JsonException($"{number.ToString(CultureInfo.InvariantCulture)} is beyond a {typeof(T).Name}'s range; map the column to double.")
                : value;
        }

        var text = JsonText.ReadString(ref reader, "a number");
        return text switch
        {
            "NaN" => T.NaN,
            "Infinity" => T.PositiveInfinity,
            "-Infinity" => T.NegativeInfinity,
            _ when T.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) => parsed,
            _ => throw new JsonException($"'{text}' is not a number."),
        };
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options)
    {
        if (T.IsFinite(value))
        {
            writer.WriteNumberValue(double.CreateChecked(value));
        }
        else
        {
            writer.WriteStringValue(T.IsNaN(value) ? "NaN" : T.IsPositiveInfinity(value) ? "Infinity" : "-Infinity");
        }
    }
}
