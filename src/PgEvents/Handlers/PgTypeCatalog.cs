using System.Collections;
using System.Net;
using System.Net.NetworkInformation;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Npgsql;
using NpgsqlTypes;

namespace PgEvents;

/// <summary>
/// The PostgreSQL types of a table's columns (domains resolved to their base type, arrays to their
/// element, ranges to their subtype), and which .NET property types their row-image text reads into
/// with PgEvents' converters. A pair refused here can never deserialize; a pair accepted may still
/// fail on a value that does not fit (an interval with months in a TimeSpan, numeric NaN in a decimal),
/// with an error naming the column and the value.
/// </summary>
internal sealed class PgTypeCatalog
{
    private readonly Dictionary<uint, PgType> _types;

    private PgTypeCatalog(Dictionary<uint, PgType> types) => _types = types;

    private sealed record PgType(uint Oid, string Name, char Category, char Kind, uint BaseType, uint Element, uint Subtype);

    /// <summary>Loads the given types and every type they lead to (domain bases, array elements, range subtypes).</summary>
    public static async Task<PgTypeCatalog> LoadAsync(NpgsqlConnection connection, IEnumerable<uint> oids, CancellationToken cancellationToken)
    {
        var types = new Dictionary<uint, PgType>();
        var missing = oids.Distinct().ToArray();
        while (missing.Length > 0)
        {
            await using var command = new NpgsqlCommand(
                """
                SELECT t.oid, t.typname, t.typcategory, t.typtype, t.typbasetype, t.typelem, COALESCE(r.rngsubtype, 0)
                  FROM pg_type t LEFT JOIN pg_range r ON r.rngtypid = t.oid
                 WHERE t.oid = ANY(@oids)
                """, connection);
            command.Parameters.AddWithValue("oids", NpgsqlDbType.Array | NpgsqlDbType.Oid, missing);
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    var type = new PgType(reader.GetFieldValue<uint>(0), reader.GetString(1), reader.GetFieldValue<char>(2), reader.GetFieldValue<char>(3),
                        reader.GetFieldValue<uint>(4), reader.GetFieldValue<uint>(5), reader.GetFieldValue<uint>(6));
                    types[type.Oid] = type;
                }
            }

            missing = types.Values.SelectMany(t => new[] { t.BaseType, t.Element, t.Subtype })
                .Where(oid => oid != 0 && !types.ContainsKey(oid)).Distinct().ToArray();
        }

        return new PgTypeCatalog(types);
    }

    /// <summary>Whether a property of <paramref name="propertyType"/> can hold the column type's values.</summary>
    public bool CanHold(Type propertyType, uint typeOid, JsonSerializerOptions inspectable)
    {
        if (!_types.TryGetValue(typeOid, out var found))
        {
            return true;
        }

        var pg = Base(found);
        var type = Nullable.GetUnderlyingType(propertyType) ?? propertyType;
        if (type == typeof(object) || type == typeof(JsonElement) || type == typeof(JsonDocument) || typeof(JsonNode).IsAssignableFrom(type))
        {
            return true;
        }

        if (pg.Category == 'A' && pg.Element != 0)
        {
            if (type == typeof(string) || type.IsArray && type.GetArrayRank() != 1 || ElementOf(type) is not { } element)
            {
                return false;
            }

            // A multi-dimensional array arrives as nested JSON arrays: int[][] holds int[][] columns.
            return CanHold(element, pg.Element, inspectable) || (ElementOf(element) is not null && element != typeof(string) && CanHold(element, typeOid, inspectable));
        }

        return pg.Kind switch
        {
            'e' => type == typeof(string) || type.IsEnum,
            'c' => inspectable.GetTypeInfo(type).Kind is JsonTypeInfoKind.Object or JsonTypeInfoKind.Dictionary,
            'r' => type == typeof(string) ||
                   (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(NpgsqlRange<>) && CanHold(type.GetGenericArguments()[0], pg.Subtype, inspectable)),
            'm' => type == typeof(string),
            'p' => true,
            _ => Readers(pg) is { } readers ? readers.Contains(type) : ByCategory(type, pg, inspectable),
        };
    }

    /// <summary>The .NET types the column type reads into, for messages.</summary>
    public string Readers(uint typeOid)
    {
        if (!_types.TryGetValue(typeOid, out var found))
        {
            return "the type of your choice";
        }

        var pg = Base(found);
        return pg switch
        {
            { Category: 'A', Element: not 0 } => $"arrays or lists of {Readers(pg.Element)}",
            { Kind: 'e' } => "string or a .NET enum with its labels",
            { Kind: 'c' } => "a class or record with its attributes as properties",
            { Kind: 'r' } => $"NpgsqlRange<T> (T one of {Readers(pg.Subtype)}), string",
            { Kind: 'm' } => "string",
            _ => Readers(pg) is { } readers
                ? string.Join(", ", readers.Select(Describe))
                : pg.Category switch
                {
                    'N' => "a numeric type (int, long, decimal, double, …)",
                    'S' => "string, char, Guid or a .NET enum",
                    'B' => "bool",
                    _ => "string",
                },
        };
    }

    /// <summary>Why the obvious choice is missing, where it is not obvious (starts with "; " or is empty).</summary>
    public string Note(uint typeOid) =>
        _types.TryGetValue(typeOid, out var found) ? Base(found).Name switch
        {
            "money" => "; money's text follows the writer's lc_monetary ('$1,234.50'), so it does not read reliably as a number: " +
                "map it to string, or change the column to numeric",
            "timestamp" => "; a timestamp has no time zone, so DateTimeOffset would have to guess one (make the column timestamptz to use it)",
            "line" or "lseg" or "box" or "path" or "polygon" or "circle" => "; PgEvents reads point, and the other geometric types as text",
            _ => string.Empty,
        } : string.Empty;

    /// <summary>A C#-like name: <c>Int32?</c>, <c>NpgsqlRange&lt;Int32&gt;</c>, <c>String[]</c>.</summary>
    public static string Describe(Type type) =>
        Nullable.GetUnderlyingType(type) is { } inner ? Describe(inner) + "?"
        : type.IsGenericType ? $"{type.Name[..type.Name.IndexOf('`', StringComparison.Ordinal)]}<{string.Join(", ", type.GetGenericArguments().Select(Describe))}>"
        : type.Name;

    private static Type? ElementOf(Type type) =>
        type.IsArray ? type.GetElementType()
        : type.IsGenericType && type.GetInterfaces().Append(type).FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEnumerable<>)) is { } enumerable
            && !type.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IDictionary<,>))
            ? enumerable.GetGenericArguments()[0]
            : null;

    private static bool ByCategory(Type type, PgType pg, JsonSerializerOptions inspectable) => pg.Category switch
    {
        'N' => IsNumber(type),
        'B' => type == typeof(bool),
        'S' => type == typeof(string) || type == typeof(char) || type.IsEnum || type == typeof(Guid),
        // hstore and other extension types that to_jsonb turns into an object.
        _ when pg.Name == "hstore" => inspectable.GetTypeInfo(type).Kind is JsonTypeInfoKind.Dictionary or JsonTypeInfoKind.Object,
        // Types this check does not know: the row type decides.
        _ => true,
    };

    private static bool IsNumber(Type type) =>
        type == typeof(byte) || type == typeof(sbyte) || type == typeof(short) || type == typeof(ushort) || type == typeof(int) ||
        type == typeof(uint) || type == typeof(long) || type == typeof(ulong) || type == typeof(float) || type == typeof(double) ||
        type == typeof(decimal) || type.IsEnum;

    /// <summary>The .NET types a built-in type reads into, or null for types decided by category.</summary>
    private static Type[]? Readers(PgType pg) => pg.Name switch
    {
        "bool" => [typeof(bool), typeof(string)],
        "int2" or "int4" or "int8" or "float4" or "float8" or "numeric" or "oid" or "xid" or "xid8" or "cid" =>
            [typeof(short), typeof(int), typeof(long), typeof(decimal), typeof(double), typeof(float), typeof(byte), typeof(sbyte), typeof(ushort),
             typeof(uint), typeof(ulong), typeof(string)],
        "money" => [typeof(string)],
        "uuid" => [typeof(Guid), typeof(string)],
        "bytea" => [typeof(byte[]), typeof(string)],
        "date" => [typeof(DateOnly), typeof(DateTime), typeof(string)],
        "timestamp" => [typeof(DateTime), typeof(string)],
        "timestamptz" => [typeof(DateTime), typeof(DateTimeOffset), typeof(string)],
        "time" => [typeof(TimeOnly), typeof(TimeSpan), typeof(string)],
        "timetz" => [typeof(DateTimeOffset), typeof(string)],
        "interval" => [typeof(TimeSpan), typeof(NpgsqlInterval), typeof(string)],
        "inet" => [typeof(IPAddress), typeof(NpgsqlInet), typeof(string)],
        "cidr" => [typeof(IPNetwork), typeof(NpgsqlInet), typeof(string)],
        "macaddr" or "macaddr8" => [typeof(PhysicalAddress), typeof(string)],
        "bit" or "varbit" => [typeof(BitArray), typeof(string)],
        "point" => [typeof(NpgsqlPoint), typeof(string)],
        "line" or "lseg" or "box" or "path" or "polygon" or "circle" or "tsvector" or "tsquery" or "xml" or "pg_lsn" or "tid" or "txid_snapshot"
            or "pg_snapshot" => [typeof(string)],
        _ when pg.Category == 'N' && pg.Name.StartsWith("reg", StringComparison.Ordinal) => [typeof(string)],
        _ => null,
    };

    private PgType Base(PgType type)
    {
        while (type.Kind == 'd' && _types.TryGetValue(type.BaseType, out var baseType))
        {
            type = baseType;
        }

        return type;
    }
}
