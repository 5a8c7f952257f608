using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using NpgsqlTypes;

namespace PgEvents;

/// <summary>
/// Reads range text (<c>[1,5)</c>, <c>(,6)</c>, <c>empty</c>, <c>["2024-01-01 00:00:00+00",infinity)</c>)
/// into <see cref="NpgsqlRange{T}"/>. Each bound is read as a JSON value of <c>T</c> through the same
/// options, so a bound is held to the same rules as a column of the range's subtype.
/// </summary>
internal sealed partial class NpgsqlRangeConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) =>
        typeToConvert.IsGenericType && typeToConvert.GetGenericTypeDefinition() == typeof(NpgsqlRange<>);

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(RangeConverter<>).MakeGenericType(typeToConvert.GetGenericArguments()[0]))!;

    [GeneratedRegex(@"^-?\d+(\.\d+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex PlainNumber();

    private sealed class RangeConverter<T> : JsonConverter<NpgsqlRange<T>>
    {
        public override NpgsqlRange<T> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var text = JsonText.ReadString(ref reader, "a range");
            if (text == "empty")
            {
                return NpgsqlRange<T>.Empty;
            }

            if (text.Length < 3 || text[0] is not ('[' or '(') || text[^1] is not (']' or ')'))
            {
                throw new JsonException($"'{text}' is not range text.");
            }

            var (lower, upper) = SplitBounds(text[1..^1], text);
            return new NpgsqlRange<T>(
                lower is null ? default! : Bound(lower, options), text[0] == '[', lower is null,
                upper is null ? default! : Bound(upper, options), text[^1] == ']', upper is null);
        }

        public override void Write(Utf8JsonWriter writer, NpgsqlRange<T> value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());

        private static T Bound(string text, JsonSerializerOptions options)
        {
            // A plain number is passed as a JSON number, so integer subtypes read whatever the options' NumberHandling.
            var json = PlainNumber().IsMatch(text) ? text : JsonSerializer.Serialize(text);
            return JsonSerializer.Deserialize<T>(json, options)!;
        }

        /// <summary>Splits <c>lower,upper</c>; a bound is empty (unbounded), bare, or double-quoted with <c>""</c> and <c>\</c> escapes.</summary>
        private static (string? Lower, string? Upper) SplitBounds(string inner, string text)
        {
            var bounds = new List<string?>(2);
            var i = 0;
            while (true)
            {
                var bound = new StringBuilder();
                var present = false;
                while (i < inner.Length && inner[i] != ',')
                {
                    present = true;
                    if (inner[i] != '"')
                    {
                        bound.Append(inner[i++]);
                        continue;
                    }

                    for (i++; i < inner.Length; i++)
                    {
                        if (inner[i] == '\\' && i + 1 < inner.Length)
                        {
                            bound.Append(inner[++i]);
                        }
                        else if (inner[i] == '"' && i + 1 < inner.Length && inner[i + 1] == '"')
                        {
                            bound.Append(inner[++i]);
                        }
                        else if (inner[i] == '"')
                        {
                            i++;
                            break;
                        }
                        else
                        {
                            bound.Append(inner[i]);
                        }
                    }
                }

                bounds.Add(present ? bound.ToString() : null);
                if (i >= inner.Length)
                {
                    break;
                }

                i++;
            }

            return bounds.Count == 2 ? (bounds[0], bounds[1]) : throw new JsonException($"'{text}' is not range text.");
        }
    }
}
