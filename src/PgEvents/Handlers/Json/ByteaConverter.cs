using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads <c>bytea</c>, which <c>to_jsonb</c> writes as hex text (<c>"\\x00ff"</c>, <c>"\\x"</c> when
/// empty), into <c>byte[]</c>; System.Text.Json alone expects base64.
/// </summary>
internal sealed class ByteaConverter : JsonConverter<byte[]>
{
    public override byte[]? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException($"Expected bytea hex text (\"\\\\x…\"), found {reader.TokenType}.");
        }

        var text = reader.GetString()!;
        if (!text.StartsWith("\\x", StringComparison.Ordinal))
        {
            // bytea_output = 'escape' is a setting of the reading session, never of to_jsonb: hex is all
            // that reaches the log, but base64 written by someone else stays readable.
            return Convert.FromBase64String(text);
        }

        try
        {
            return Convert.FromHexString(text.AsSpan(2));
        }
        catch (FormatException e)
        {
            throw new JsonException($"'{text}' is not bytea hex text.", e);
        }
    }

    public override void Write(Utf8JsonWriter writer, byte[] value, JsonSerializerOptions options) =>
        writer.WriteStringValue("\\x" + Convert.ToHexString(value).ToLowerInvariant());
}
