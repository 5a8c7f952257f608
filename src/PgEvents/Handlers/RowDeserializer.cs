using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>Turns the JSON image of a row into the handler's row type, with errors that name the column.</summary>
/// <param name="options">
/// The configured options; deserialization uses a copy with PgEvents' PostgreSQL text converters
/// appended (see <see cref="PostgresJson.Apply"/>), so replaced options still read bytea, intervals,
/// ±infinity and NaN, while a converter of the caller's for the same type wins.
/// </param>
internal sealed class RowDeserializer(JsonSerializerOptions options)
{
    /// <summary>
    /// Column <c>created_at</c> fills property <c>CreatedAt</c>; names compare case-insensitively,
    /// PostgreSQL enums and text map onto .NET enums by name.
    /// </summary>
    public static JsonSerializerOptions CreateDefaultOptions() => new(JsonSerializerDefaults.General)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        PropertyNameCaseInsensitive = true,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
        Converters = { new JsonStringEnumConverter() },
    };

    public JsonSerializerOptions Options { get; } = PostgresJson.Apply(options);

    public TRow? Deserialize<TRow>(CapturedEvent captured, string? json, string image)
    {
        if (json is null)
        {
            return default;
        }

        try
        {
            return JsonSerializer.Deserialize<TRow>(json, Options);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
        {
            var column = e is JsonException { Path: { } path } ? $" at column '{path.TrimStart('$', '.')}'" : string.Empty;
            throw new PgEventsException(
                $"The {image} of {captured.TableName} at position {captured.LogPosition} does not deserialize into " +
                $"{typeof(TRow).FullName}{column}: {e.Message} Fix the row type (or its JsonSerializerOptions) to match the table.",
                e);
        }
    }
}
