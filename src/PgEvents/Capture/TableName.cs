using System.Text;

namespace PgEvents;

/// <summary>
/// The exact, case-sensitive name of a PostgreSQL table: <c>Order Items</c> names the table
/// <c>"Order Items"</c>, never <c>order_items</c>. Names are passed to PostgreSQL as values or quoted
/// identifiers, so any character is allowed.
/// </summary>
public readonly record struct TableName
{
    /// <summary>The schema used when a name has no schema part.</summary>
    public const string DefaultSchema = "public";

    /// <summary>Creates a table name from its two parts.</summary>
    /// <param name="schema">The schema, exactly as stored in the catalog.</param>
    /// <param name="name">The table, exactly as stored in the catalog.</param>
    /// <exception cref="ArgumentException">A part is empty, too long or contains a NUL character.</exception>
    public TableName(string schema, string name)
    {
        Schema = SqlIdentifier.Validate(schema, nameof(schema));
        Name = SqlIdentifier.Validate(name, nameof(name));
    }

    /// <summary>The schema, exactly as stored in the catalog.</summary>
    public string Schema { get; }

    /// <summary>The table, exactly as stored in the catalog.</summary>
    public string Name { get; }

    /// <summary>
    /// Parses <c>schema.table</c> or <c>table</c> (meaning <c>public.table</c>). Parts are taken
    /// literally; wrap a part in double quotes only when it contains a dot (<c>"my.schema"."a.b"</c>),
    /// doubling any quote inside it.
    /// </summary>
    /// <param name="value">The text to parse.</param>
    /// <returns>The parsed name.</returns>
    /// <exception cref="ArgumentException">The text is not a valid table name.</exception>
    public static TableName Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var parts = SplitParts(value);
        return parts.Count switch
        {
            1 => new TableName(DefaultSchema, parts[0]),
            2 => new TableName(parts[0], parts[1]),
            _ => throw new ArgumentException(
                $"'{value}' is not a valid table name: expected 'table' or 'schema.table' " +
                "(quote a part with double quotes when it contains a dot).", nameof(value)),
        };
    }

    /// <summary>The name as a quoted, schema-qualified SQL identifier.</summary>
    /// <returns>For example <c>"public"."Order Items"</c>.</returns>
    public override string ToString() =>
        Schema is null || Name is null
            ? "(no table name)" // default(TableName): logs and debuggers must not throw
            : SqlIdentifier.Quote(Schema) + "." + SqlIdentifier.Quote(Name);

    private static List<string> SplitParts(string value)
    {
        var parts = new List<string>(2);
        var current = new StringBuilder();
        var i = 0;
        while (i <= value.Length)
        {
            if (i < value.Length && value[i] == '"' && current.Length == 0)
            {
                // Quoted part: read up to the closing quote, "" stands for one quote.
                i++;
                var closed = false;
                while (i < value.Length)
                {
                    if (value[i] == '"')
                    {
                        if (i + 1 < value.Length && value[i + 1] == '"')
                        {
                            current.Append('"');
                            i += 2;
                            continue;
                        }

                        closed = true;
                        i++;
                        break;
                    }

                    current.Append(value[i++]);
                }

                if (!closed || (i < value.Length && value[i] != '.'))
                {
                    throw new ArgumentException($"'{value}' has an unbalanced or misplaced double quote.", nameof(value));
                }

                continue;
            }

            if (i == value.Length || value[i] == '.')
            {
                parts.Add(current.ToString());
                current.Clear();
                i++;
                continue;
            }

            current.Append(value[i++]);
        }

        return parts;
    }
}
