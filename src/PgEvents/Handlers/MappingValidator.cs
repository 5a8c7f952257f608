using System.Collections;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Checks every handler mapping against the live catalog when the consumer starts, so a wrong table
/// name, a missing primary key or a row type that cannot hold the table's columns fails at start
/// with a message that says what to fix, instead of blocking on the first event hours later.
/// </summary>
internal sealed class MappingValidator(NpgsqlDataSource dataSource, PgEventsOptions options, HandlerMap handlers)
{
    private sealed record Column(string Name, string TypeName, char Category);

    public async Task ValidateAsync(CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        if (options.DeliveryLanes > 1 && handlers.HasBatchHandlers)
        {
            problems.Add($"PgEventsOptions.DeliveryLanes is {options.DeliveryLanes}, but batch handlers are registered: a batch is delivered " +
                "in one call, in order. Use one lane, or row handlers only.");
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        foreach (var table in handlers.Tables)
        {
            var (exists, hasPrimaryKey, columns) = await InspectAsync(connection, table, cancellationToken).ConfigureAwait(false);
            if (!exists)
            {
                problems.Add($"Table {table} does not exist in database '{connection.Database}'. Names are exact and case-sensitive (a name without schema means 'public').");
                continue;
            }

            if (!hasPrimaryKey && !options.AllowTablesWithoutPrimaryKey)
            {
                problems.Add($"Table {table} has no primary key, so its rows cannot be matched to a replica or read model. " +
                    "Add a primary key, or set PgEventsOptions.AllowTablesWithoutPrimaryKey = true.");
            }

            foreach (var registration in handlers.For(table))
            {
                if (registration.RowType is { } rowType)
                {
                    CheckRowType(problems, table, registration, rowType, columns);
                }
            }
        }

        if (problems.Count > 0)
        {
            var message = new StringBuilder("PgEvents cannot start consumer '").Append(options.ConsumerName).Append("':");
            foreach (var problem in problems)
            {
                message.AppendLine().Append(" - ").Append(problem);
            }

            throw new PgEventsException(message.ToString());
        }
    }

    private void CheckRowType(List<string> problems, TableName table, HandlerRegistration registration, Type rowType, IReadOnlyList<Column> columns)
    {
        // A copy with a resolver: inspecting metadata must not freeze or alter the caller's options.
        var inspectable = new JsonSerializerOptions(options.JsonSerializerOptions);
        inspectable.TypeInfoResolver ??= new DefaultJsonTypeInfoResolver();
        var typeInfo = inspectable.GetTypeInfo(rowType);
        if (typeInfo.Kind != JsonTypeInfoKind.Object || rowType == typeof(object))
        {
            return;
        }

        var comparison = options.JsonSerializerOptions.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        foreach (var property in typeInfo.Properties)
        {
            if (property.Set is null && !IsConstructorParameter(typeInfo, property))
            {
                continue;
            }

            var column = columns.FirstOrDefault(c => string.Equals(c.Name, property.Name, comparison));
            if (column is null)
            {
                problems.Add($"{rowType.Name}.{PropertyName(property)} (JSON name '{property.Name}') of handler {registration.HandlerType.Name} " +
                    $"matches no column of {table}; its columns are: {string.Join(", ", columns.Select(c => c.Name))}. " +
                    "Rename the property, add [JsonPropertyName], or mark it [JsonIgnore].");
                continue;
            }

            if (!CanHold(property.PropertyType, column))
            {
                problems.Add($"{rowType.Name}.{PropertyName(property)} is {Describe(property.PropertyType)} but column '{column.Name}' of {table} " +
                    $"is {column.TypeName}; change the property type to one that holds {column.TypeName}.");
            }
        }
    }

    private static bool IsConstructorParameter(JsonTypeInfo typeInfo, JsonPropertyInfo property) =>
        typeInfo.Type.GetConstructors().Any(c => c.GetParameters().Any(p => string.Equals(p.Name, PropertyName(property), StringComparison.OrdinalIgnoreCase)));

    private static string PropertyName(JsonPropertyInfo property) =>
        (property.AttributeProvider as System.Reflection.MemberInfo)?.Name ?? property.Name;

    private static string Describe(Type type) => Nullable.GetUnderlyingType(type) is { } inner ? inner.Name + "?" : type.Name;

    private static bool CanHold(Type propertyType, Column column)
    {
        var type = Nullable.GetUnderlyingType(propertyType) ?? propertyType;
        if (type == typeof(object) || type == typeof(JsonElement) || type == typeof(JsonDocument) || typeof(JsonNode).IsAssignableFrom(type))
        {
            return true;
        }

        return column.Category switch
        {
            'N' => IsNumber(type),
            'B' => type == typeof(bool),
            'S' => type == typeof(string) || type == typeof(char) || type.IsEnum || type == typeof(Guid),
            'E' => type == typeof(string) || type.IsEnum,
            'D' => type == typeof(DateTime) || type == typeof(DateTimeOffset) || type == typeof(DateOnly) || type == typeof(TimeOnly) || type == typeof(string),
            'T' => type == typeof(TimeSpan) || type == typeof(string),
            'A' => type != typeof(string) && typeof(IEnumerable).IsAssignableFrom(type),
            'U' when column.TypeName == "uuid" => type == typeof(Guid) || type == typeof(string),
            // json, jsonb, composites and types this check does not know: the row type decides.
            _ => true,
        };
    }

    private static bool IsNumber(Type type) =>
        type == typeof(byte) || type == typeof(sbyte) || type == typeof(short) || type == typeof(ushort) || type == typeof(int) ||
        type == typeof(uint) || type == typeof(long) || type == typeof(ulong) || type == typeof(float) || type == typeof(double) ||
        type == typeof(decimal) || type.IsEnum;

    private static async Task<(bool Exists, bool HasPrimaryKey, IReadOnlyList<Column> Columns)> InspectAsync(
        NpgsqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                   a.attname, format_type(a.atttypid, a.atttypmod), ty.typcategory, ty.typname
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              LEFT JOIN pg_type ty ON ty.oid = a.atttypid
             WHERE n.nspname = @schema AND c.relname = @name
             ORDER BY a.attnum
            """, connection);
        command.Parameters.AddWithValue("schema", table.Schema);
        command.Parameters.AddWithValue("name", table.Name);
        var exists = false;
        var hasPrimaryKey = false;
        var columns = new List<Column>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            exists = true;
            hasPrimaryKey = reader.GetBoolean(0);
            if (!reader.IsDBNull(1))
            {
                var category = reader.GetFieldValue<char>(3);
                var typeName = reader.GetString(4) == "uuid" ? "uuid" : reader.GetString(2);
                columns.Add(new Column(reader.GetString(1), typeName, category));
            }
        }

        return (exists, hasPrimaryKey, columns);
    }
}
