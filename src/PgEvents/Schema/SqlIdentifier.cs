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

    /// <summary>
    /// Validates the name of a PgEvents schema. Besides SQL text, it is written inside string
    /// literals and dollar-quoted function bodies of the installed scripts, where a quote or a
    /// dollar sign would end them: those two are refused.
    /// </summary>
    public static string ValidateSchemaName(string? identifier, string parameterName)
    {
        var name = Validate(identifier, parameterName);
        if (name.AsSpan().IndexOfAny('\'', '$') >= 0)
        {
            throw new ArgumentException(
                $"The PgEvents schema name '{identifier}' contains a ' or $ character, which the installed SQL cannot hold; choose a name without them.",
                parameterName);
        }

        return name;
    }

    /// <summary>Quotes an identifier so that any character, including quotes, is taken literally.</summary>
    public static string Quote(string identifier)
    {
        Validate(identifier, nameof(identifier));
        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }
}
