using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads strings as usual, and any other JSON value as its JSON text, so a <c>json</c> or <c>jsonb</c>
/// column (an object, array or number in the row image) maps to <see cref="string"/> as in Npgsql.
/// The text is the <c>jsonb</c> form the log stores (keys sorted, one space after <c>:</c> and <c>,</c>).
/// </summary>
internal sealed class JsonTextStringConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
        {
            return reader.GetString();
        }

        using var document = JsonDocument.ParseValue(ref reader);
        return document.RootElement.GetRawText();
    }

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}
