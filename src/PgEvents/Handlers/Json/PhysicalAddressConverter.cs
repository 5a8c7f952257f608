using System.Net.NetworkInformation;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>Reads <c>macaddr</c> and <c>macaddr8</c> text (<c>08:00:2b:01:02:03</c>) into <see cref="PhysicalAddress"/>.</summary>
internal sealed class PhysicalAddressConverter : JsonConverter<PhysicalAddress>
{
    public override PhysicalAddress? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "a macaddr");
        return PhysicalAddress.TryParse(text.Replace(":", string.Empty, StringComparison.Ordinal), out var address)
            ? address
            : throw new JsonException($"'{text}' is not a MAC address.");
    }

    public override void Write(Utf8JsonWriter writer, PhysicalAddress value, JsonSerializerOptions options) =>
        writer.WriteStringValue(string.Join(':', value.GetAddressBytes().Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture))));
}
