using System.Text;

namespace PgEvents;

/// <summary>Validation and quoting of PostgreSQL identifiers; the only way names reach SQL text.</summary>
internal static class SqlIdentifier
{
    /// <summary>PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1 bytes).</summary>
    public const int MaxBytes = 63;

    public static string Validate(string? identifier, string parameterName)
    {
        if (string.IsNullOrEmpty(identifier))
        {
            throw new ArgumentException("A PostgreSQL identifier cannot be null or empty.", parameterName);
        }

        if (identifier.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"The identifier '{identifier.Replace("\0", "\\0", StringComparison.Ordinal)}' contains a NUL character.", parameterName);
        }

        if (Encoding.UTF8.GetByteCount(identifier) > MaxBytes)
        {
            throw new ArgumentException(
                $"The identifier '{identifier}' is longer than {MaxBytes} bytes; PostgreSQL would truncate it.", parameterName);
        }

        return identifier;
    }

    /// <summary>Quotes an identifier so that any character, including quotes, is taken literally.</summary>
    public static string Quote(string identifier)
    {
        Validate(identifier, nameof(identifier));
        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }
}
