using System.Collections;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace PgEvents;

/// <summary>Reads <c>bit(n)</c> and <c>varbit</c> text (<c>1010</c>) into <see cref="BitArray"/>, the leftmost bit at index 0, as Npgsql does.</summary>
internal sealed class BitArrayConverter : JsonConverter<BitArray>
{
    public override BitArray? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = JsonText.ReadString(ref reader, "a bit string");
        var bits = new BitArray(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            bits[i] = text[i] switch
            {
                '1' => true,
                '0' => false,
                _ => throw new JsonException($"'{text}' is not a bit string."),
            };
        }

        return bits;
    }

    public override void Write(Utf8JsonWriter writer, BitArray value, JsonSerializerOptions options)
    {
        var text = new StringBuilder(value.Length);
        foreach (bool bit in value)
        {
            text.Append(bit ? '1' : '0');
        }

        writer.WriteStringValue(text.ToString());
    }
}
