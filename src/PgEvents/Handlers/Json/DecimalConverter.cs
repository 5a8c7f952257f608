using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads <c>numeric</c> into <see cref="decimal"/> only when it fits exactly: <c>NaN</c> and
/// <c>±Infinity</c> (strings in the JSON), more than 28 digits or values beyond decimal's range fail
/// with a message naming the value, where System.Text.Json would round or fail without one.
/// </summary>
internal sealed class DecimalConverter : JsonConverter<decimal>
{
    public override decimal Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.TokenType switch
        {
            JsonTokenType.Number => Encoding.UTF8.GetString(reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan),
            _ => JsonText.ReadString(ref reader, "a number"),
        };
        if (text is "NaN" or "Infinity" or "-Infinity")
        {
            throw new JsonException($"{text} does not fit a decimal; map the column to double (or string), or keep {text} out of it.");
        }

        if (!decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            throw new JsonException($"'{text}' is not a number that fits a decimal; map the column to double or string.");
        }

        // numeric text is plain digits (never an exponent): a decimal that prints differently was rounded.
        if (!text.Contains('e', StringComparison.OrdinalIgnoreCase) && TrimZeros(value.ToString(CultureInfo.InvariantCulture)) != TrimZeros(text))
        {
            throw new JsonException($"{text} has more digits than a decimal holds (28); map the column to double or string.");
        }

        return value;
    }

    public override void Write(Utf8JsonWriter writer, decimal value, JsonSerializerOptions options) => writer.WriteNumberValue(value);

    private static string TrimZeros(string number) => number.Contains('.', StringComparison.Ordinal) ? number.TrimEnd('0').TrimEnd('.') : number;
}
