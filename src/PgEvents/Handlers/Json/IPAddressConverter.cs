using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>
/// Reads <c>inet</c> host addresses (<c>10.1.2.3</c>, <c>::1</c>) into <see cref="IPAddress"/>. An
/// address with a netmask (<c>10.1.2.3/8</c>) is refused rather than stripped of it: map such columns
/// to NpgsqlInet.
/// </summary>
internal sealed class IPAddressConverter : JsonConverter<IPAddress>
{
    public override IPAddress? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "an inet");
        if (text.Contains('/', StringComparison.Ordinal))
        {
            throw new JsonException($"inet '{text}' has a netmask, which IPAddress would drop; map the column to NpgsqlInet (or NpgsqlCidr for cidr).");
        }

        return IPAddress.TryParse(text, out var address) ? address : throw new JsonException($"'{text}' is not an IP address.");
    }

    public override void Write(Utf8JsonWriter writer, IPAddress value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}
