using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization;
using NpgsqlTypes;

namespace PgEvents;

/// <summary>Reads <c>inet</c> and <c>cidr</c> text (<c>10.1.2.3/8</c>; no <c>/n</c> means a host) into <see cref="NpgsqlInet"/>.</summary>
internal sealed class NpgsqlInetConverter : JsonConverter<NpgsqlInet>
{
    public override NpgsqlInet Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "an inet or cidr");
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (!IPAddress.TryParse(slash < 0 ? text : text[..slash], out var address) ||
            !byte.TryParse(slash < 0 ? (address.AddressFamily == AddressFamily.InterNetworkV6 ? "128" : "32") : text[(slash + 1)..],
                NumberStyles.None, CultureInfo.InvariantCulture, out var netmask))
        {
            throw new JsonException($"'{text}' is not inet or cidr text.");
        }

        return new NpgsqlInet(address, netmask);
    }

    public override void Write(Utf8JsonWriter writer, NpgsqlInet value, JsonSerializerOptions options) =>
        writer.WriteStringValue(string.Create(CultureInfo.InvariantCulture, $"{value.Address}/{value.Netmask}"));
}
