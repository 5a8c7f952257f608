using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>Reads <c>cidr</c> text (<c>10.0.0.0/8</c>) into <see cref="IPNetwork"/>, Npgsql's mapping for cidr.</summary>
internal sealed class IPNetworkConverter : JsonConverter<IPNetwork>
{
    public override IPNetwork Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "a cidr");
        return IPNetwork.TryParse(text, out var network)
            ? network
            : throw new JsonException($"'{text}' is not a network with zero host bits (cidr); map an inet column with a netmask to NpgsqlInet.");
    }

    public override void Write(Utf8JsonWriter writer, IPNetwork value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}
