using System.Text.Json;

namespace PgEvents;

/// <summary>Helpers shared by the PostgreSQL text converters.</summary>
internal static class JsonText
{
    /// <summary>The string at the reader, or a <see cref="JsonException"/> that says what was expected instead.</summary>
    public static string ReadString(ref Utf8JsonReader reader, string expected) =>
        reader.TokenType == JsonTokenType.String
            ? reader.GetString()!
            : throw new JsonException($"Expected {expected} as PostgreSQL text, found {reader.TokenType}.");
}
