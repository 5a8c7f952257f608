using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// The converters that read PostgreSQL's text forms in row images (bytea hex, ±infinity, NaN,
/// intervals in every IntervalStyle, ranges, network and bit types), and the rule that applies them.
/// </summary>
internal static class PostgresJson
{
    /// <summary>
    /// A copy of <paramref name="options"/> with PgEvents' converters appended after the caller's:
    /// System.Text.Json uses the first converter that handles a type, so a converter of the caller's
    /// (in the options or on a property) wins over PgEvents' one for the same type, and every other
    /// type still reads PostgreSQL's text. The caller's instance is left as it is.
    /// </summary>
    public static JsonSerializerOptions Apply(JsonSerializerOptions options)
    {
        var effective = new JsonSerializerOptions(options);
        foreach (var converter in Converters())
        {
            effective.Converters.Add(converter);
        }

        return effective;
    }

    /// <summary>Whether one of the caller's own converters handles <paramref name="type"/> (and so decides what it accepts).</summary>
    public static bool HasOwnConverter(JsonSerializerOptions options, Type type) => options.Converters.Any(c => c.CanConvert(type));

    private static IEnumerable<JsonConverter> Converters() =>
    [
        new ByteaConverter(),
        new DateTimeConverter(),
        new DateTimeOffsetConverter(),
        new DateOnlyConverter(),
        new TimeSpanConverter(),
        new NpgsqlIntervalConverter(),
        new FloatingPointConverter<double>(),
        new FloatingPointConverter<float>(),
        new DecimalConverter(),
        new JsonTextStringConverter(),
        new IPAddressConverter(),
        new NpgsqlInetConverter(),
        new IPNetworkConverter(),
        new PhysicalAddressConverter(),
        new BitArrayConverter(),
        new NpgsqlPointConverter(),
        new NpgsqlRangeConverterFactory(),
        // PostgreSQL enums arrive as their labels; options without a string enum converter still bind them.
        new JsonStringEnumConverter(),
    ];
}
