using System.Globalization;
using System.Text.Json;
using Npgsql;

namespace PgEvents;

/// <summary>
/// The identity of a changed row, for ordered parallel lanes: its table and primary-key values, read
/// from the row image. Changes with the same key keep their order; a change without a usable key (a
/// truncate, an update that changed the key, a table without a primary key) is a barrier instead.
/// </summary>
internal sealed class RowKeys
{
    private readonly Dictionary<TableName, KeyColumn[]> _columns;

    private RowKeys(Dictionary<TableName, KeyColumn[]> columns) => _columns = columns;

    /// <summary>
    /// A key column, and whether it is a timestamptz (or a domain over one): its JSON text carries the
    /// writing session's TimeZone, so one instant has many texts, and the key is the instant.
    /// </summary>
    private readonly record struct KeyColumn(string Name, bool IsInstant);

    /// <summary>Reads the primary-key columns of <paramref name="tables"/> from the catalog.</summary>
    public static async Task<RowKeys> LoadAsync(NpgsqlConnection connection, IEnumerable<TableName> tables, CancellationToken cancellationToken)
    {
        var columns = new Dictionary<TableName, KeyColumn[]>();
        await using var command = new NpgsqlCommand(
            """
            SELECT a.attname, coalesce(nullif(t.typbasetype, 0), t.oid) = 'timestamptz'::regtype
              FROM pg_index i
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              JOIN pg_type t ON t.oid = a.atttypid
             WHERE i.indrelid = to_regclass(@table) AND i.indisprimary
             ORDER BY array_position(i.indkey::int2[], a.attnum)
            """, connection);
        var table = new NpgsqlParameter<string>("table", NpgsqlTypes.NpgsqlDbType.Text);
        command.Parameters.Add(table);
        foreach (var name in tables)
        {
            table.TypedValue = name.ToString();
            var names = new List<KeyColumn>();
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    names.Add(new KeyColumn(reader.GetString(0), reader.GetBoolean(1)));
                }
            }

            columns[name] = [.. names];
        }

        return new RowKeys(columns);
    }

    /// <summary>The row's key, or null when the change must wait for every change before it.</summary>
    public string? KeyOf(CapturedEvent captured)
    {
        if (captured.Kind == ChangeKind.Truncate || !_columns.TryGetValue(captured.TableName, out var columns) || columns.Length == 0)
        {
            return null;
        }

        var key = Extract(captured.RowJson, columns);
        if (key is null || (captured.OldRowJson is { } old && Extract(old, columns) != key))
        {
            // A key that changed: the row's earlier changes went by its old key.
            return null;
        }

        return captured.TableName + "\0" + key;
    }

    private static string? Extract(string? json, KeyColumn[] columns)
    {
        if (json is null)
        {
            return null;
        }

        using var document = JsonDocument.Parse(json);
        var parts = new string[columns.Length];
        for (var i = 0; i < columns.Length; i++)
        {
            if (!document.RootElement.TryGetProperty(columns[i].Name, out var value))
            {
                return null;
            }

            parts[i] = columns[i].IsInstant && value.ValueKind == JsonValueKind.String
                && DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var instant)
                ? instant.UtcTicks.ToString(CultureInfo.InvariantCulture)
                : value.GetRawText();
        }

        return string.Join("\0", parts);
    }
}
