using System.Text.Json;
using System.Text.Json.Nodes;

namespace PgEvents.Tests.Infrastructure;

/// <summary>
/// A replica of one table built only from delivered changes, the way a sync handler would apply
/// them: upsert on insert and update, delete on delete, clear on truncate. Rows are kept as
/// canonical JSON of the compared columns, so a test can compare it with the source table.
/// </summary>
internal sealed class ReplicaModel(TableName table, IReadOnlyList<string> keyColumns, IReadOnlyList<string> columns)
{
    private readonly SortedDictionary<string, string> _rows = new(StringComparer.Ordinal);

    public IReadOnlyCollection<string> Rows => _rows.Values;

    public void ApplyAll(IEnumerable<CapturedEvent> events)
    {
        foreach (var captured in events.Where(e => e.TableName == table))
        {
            switch (captured.Kind)
            {
                case ChangeKind.Insert:
                case ChangeKind.Update:
                    if (captured.OldRowJson is { } old)
                    {
                        // A key change moves the row.
                        _rows.Remove(Key(old));
                    }

                    _rows[Key(captured.RowJson!)] = Project(captured.RowJson!);
                    break;
                case ChangeKind.Delete:
                    _rows.Remove(Key(captured.RowJson!)).Should().BeTrue($"a delete of {captured.RowJson} must follow its insert");
                    break;
                case ChangeKind.Truncate:
                    _rows.Clear();
                    break;
            }
        }
    }

    /// <summary>The source table's rows in the same form (selected from the table and its partitions or children).</summary>
    public async Task<IReadOnlyCollection<string>> SourceRowsAsync(DatabaseFixture db)
    {
        await using var command = db.DataSource.CreateCommand($"SELECT to_jsonb(t)::text FROM {table} AS t");
        var rows = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var json = reader.GetString(0);
            rows[Key(json)] = Project(json);
        }

        return rows.Values;
    }

    public async Task ShouldEqualSourceAsync(DatabaseFixture db, string because)
    {
        var source = await SourceRowsAsync(db);
        source.Should().NotBeEmpty("a comparison of empty tables would prove nothing");
        Rows.Should().Equal(source, because);
    }

    private string Key(string json)
    {
        var row = JsonNode.Parse(json)!.AsObject();
        return string.Join("\u001f", keyColumns.Select(c => row[c]?.ToJsonString() ?? "null"));
    }

    private string Project(string json)
    {
        var row = JsonNode.Parse(json)!.AsObject();
        var projected = new JsonObject();
        foreach (var column in columns)
        {
            projected[column] = row[column]?.DeepClone();
        }

        return projected.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}
