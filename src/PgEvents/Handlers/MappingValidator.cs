using System.Text;
using System.Text.Json;
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
    private sealed record Column(string Name, string TypeName, uint TypeOid);

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
            var catalog = await PgTypeCatalog.LoadAsync(connection, columns.Select(c => c.TypeOid), cancellationToken).ConfigureAwait(false);
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
                    CheckRowType(problems, table, registration, rowType, columns, catalog);
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

    private void CheckRowType(
        List<string> problems, TableName table, HandlerRegistration registration, Type rowType, IReadOnlyList<Column> columns, PgTypeCatalog catalog)
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

            if (property.CustomConverter is null && !PostgresJson.HasOwnConverter(options.JsonSerializerOptions, property.PropertyType) &&
                !catalog.CanHold(property.PropertyType, column.TypeOid, inspectable))
            {
                problems.Add($"{rowType.Name}.{PropertyName(property)} is {PgTypeCatalog.Describe(property.PropertyType)} but column '{column.Name}' of {table} " +
                    $"is {column.TypeName}, which reads into {catalog.Readers(column.TypeOid)}: change the property type to one of those" +
                    $"{catalog.Note(column.TypeOid)}.");
            }
        }
    }

    private static bool IsConstructorParameter(JsonTypeInfo typeInfo, JsonPropertyInfo property) =>
        typeInfo.Type.GetConstructors().Any(c => c.GetParameters().Any(p => string.Equals(p.Name, PropertyName(property), StringComparison.OrdinalIgnoreCase)));

    private static string PropertyName(JsonPropertyInfo property) =>
        (property.AttributeProvider as System.Reflection.MemberInfo)?.Name ?? property.Name;

    private static async Task<(bool Exists, bool HasPrimaryKey, IReadOnlyList<Column> Columns)> InspectAsync(
        NpgsqlConnection connection, TableName table, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),
                   a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
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
                columns.Add(new Column(reader.GetString(1), reader.GetString(2), reader.GetFieldValue<uint>(3)));
            }
        }

        return (exists, hasPrimaryKey, columns);
    }
}
