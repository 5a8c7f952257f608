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
    private readonly Dictionary<TableName, string[]> _columns;

    private RowKeys(Dictionary<TableName, string[]> columns) => _columns = columns;

    /// <summary>Reads the primary-key columns of <paramref name="tables"/> from the catalog.</summary>
    public static async Task<RowKeys> LoadAsync(NpgsqlConnection connection, IEnumerable<TableName> tables, CancellationToken cancellationToken)
    {
        var columns = new Dictionary<TableName, string[]>();
        await using var command = new NpgsqlCommand(
            """
            SELECT a.attname
              FROM pg_index i
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = to_regclass(@table) AND i.indisprimary
             ORDER BY array_position(i.indkey::int2[], a.attnum)
            """, connection);
        var table = new NpgsqlParameter<string>("table", NpgsqlTypes.NpgsqlDbType.Text);
        command.Parameters.Add(table);
        foreach (var name in tables)
        {
            table.TypedValue = name.ToString();
            var names = new List<string>();
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    names.Add(reader.GetString(0));
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

    private static string? Extract(string? json, string[] columns)
    {
        if (json is null)
        {
            return null;
        }

        using var document = JsonDocument.Parse(json);
        var parts = new string[columns.Length];
        for (var i = 0; i < columns.Length; i++)
        {
            if (!document.RootElement.TryGetProperty(columns[i], out var value))
            {
                return null;
            }

            parts[i] = value.GetRawText();
        }

        return string.Join("\0", parts);
    }
}
