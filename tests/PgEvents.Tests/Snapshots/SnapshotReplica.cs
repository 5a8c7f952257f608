using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// A replica of one table kept only from delivered changes, as a sync handler keeps one: snapshot,
/// insert and update upsert, delete removes, truncate clears. Rows carry a <c>version</c> that
/// writers only ever raise and keys are never reused, so every delivery is checked as it is applied:
/// an image older than the one the replica holds, or any image of a deleted row, is a row going back
/// in time and recorded as a violation.
/// </summary>
public sealed class SnapshotReplica
{
    private readonly object _lock = new();
    private readonly Dictionary<string, (int Version, string Json)> _rows = new(StringComparer.Ordinal);
    private readonly HashSet<string> _deleted = new(StringComparer.Ordinal);
    private readonly List<string> _violations = [];
    private readonly List<(ChangeKind Kind, string Key, long Position)> _deliveries = [];

    /// <summary>
    /// Counts chunk transactions waiting for the commit phase: a backend running snapshot_chunk that
    /// waits for a shared advisory lock. (A consumer about to sleep waits the same way, and holds an
    /// exclusive two-key advisory lock too, its lease: only the query tells them apart.)
    /// </summary>
    public const string ChunksWaitingSql =
        """
        SELECT count(*) FROM pg_locks w JOIN pg_stat_activity a ON a.pid = w.pid
         WHERE w.locktype = 'advisory' AND w.mode = 'ShareLock' AND NOT w.granted
           AND a.query LIKE '%snapshot_chunk(%' AND a.datname = current_database()
        """;

    public string[] KeyColumns { get; set; } = ["id"];

    /// <summary>When set, the handler waits for it before applying a snapshot change (to stop a consumer mid-snapshot).</summary>
    public Func<RowChange<JsonElement>, CancellationToken, Task>? BeforeApply { get; set; }

    public IReadOnlyList<string> Violations
    {
        get
        {
            lock (_lock)
            {
                return _violations.ToArray();
            }
        }
    }

    public IReadOnlyList<(ChangeKind Kind, string Key, long Position)> Deliveries
    {
        get
        {
            lock (_lock)
            {
                return _deliveries.ToArray();
            }
        }
    }

    public int Count(ChangeKind kind)
    {
        lock (_lock)
        {
            return _deliveries.Count(d => d.Kind == kind);
        }
    }

    public void Apply(ChangeKind kind, string? rowJson, string? oldRowJson, long position)
    {
        lock (_lock)
        {
            if (kind == ChangeKind.Truncate)
            {
                _deliveries.Add((kind, "", position));
                foreach (var key in _rows.Keys)
                {
                    _deleted.Add(key);
                }

                _rows.Clear();
                return;
            }

            var row = JsonNode.Parse(rowJson!)!.AsObject();
            var rowKey = KeyOf(row);
            _deliveries.Add((kind, rowKey, position));
            if (kind == ChangeKind.Delete)
            {
                _rows.Remove(rowKey);
                _deleted.Add(rowKey);
                return;
            }

            if (oldRowJson is not null && KeyOf(JsonNode.Parse(oldRowJson)!.AsObject()) is var oldKey && oldKey != rowKey)
            {
                _rows.Remove(oldKey);
            }

            var version = row["version"]!.GetValue<int>();
            if (_deleted.Contains(rowKey))
            {
                _violations.Add($"{kind} of {rowKey} (version {version}) at {position} after the row was deleted");
            }

            if (_rows.TryGetValue(rowKey, out var held) && held.Version > version)
            {
                _violations.Add($"{kind} of {rowKey} at {position} went back from version {held.Version} to {version}");
            }

            _rows[rowKey] = (version, rowJson!);
        }
    }

    /// <summary>Breaks the replica the way an operator's mistake would: rows lost and rows wrong.</summary>
    public void Damage(int every)
    {
        lock (_lock)
        {
            var i = 0;
            foreach (var key in _rows.Keys.ToList())
            {
                if (i++ % every == 0)
                {
                    _rows.Remove(key);
                }
                else if (i % every == 1)
                {
                    _rows[key] = (_rows[key].Version, "{\"damaged\": true}");
                }
            }
        }
    }

    /// <summary>Forgets that rows were deleted: after a damage the snapshot brings them back, rightly.</summary>
    public void ForgetDeletes()
    {
        lock (_lock)
        {
            _deleted.Clear();
        }
    }

    public async Task<bool> MatchesAsync(NpgsqlDataSource source, string table)
    {
        var expected = await SourceAsync(source, table);
        lock (_lock)
        {
            return expected.Count == _rows.Count && expected.All(e => _rows.TryGetValue(e.Key, out var held) && held.Json == e.Value);
        }
    }

    public async Task ShouldMatchAsync(NpgsqlDataSource source, string table)
    {
        var expected = await SourceAsync(source, table);
        Dictionary<string, string> actual;
        lock (_lock)
        {
            actual = _rows.ToDictionary(r => r.Key, r => r.Value.Json, StringComparer.Ordinal);
        }

        actual.Should().BeEquivalentTo(expected, "the replica must equal the source table");
    }

    private async Task<Dictionary<string, string>> SourceAsync(NpgsqlDataSource source, string table)
    {
        await using var command = source.CreateCommand($"SELECT to_jsonb(t)::text FROM {table} AS t");
        var rows = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var json = reader.GetString(0);
            rows[KeyOf(JsonNode.Parse(json)!.AsObject())] = json;
        }

        return rows;
    }

    private string KeyOf(JsonObject row) =>
        string.Join("\u001f", KeyColumns.Select(c => row[c]?.ToJsonString(new JsonSerializerOptions()) ?? "null"));
}

/// <summary>Applies every change of its tables to the <see cref="SnapshotReplica"/>.</summary>
public sealed class SnapshotReplicaHandler(SnapshotReplica replica) : IRowHandler<JsonElement>
{
    public async Task HandleAsync(RowChange<JsonElement> change, CancellationToken cancellationToken)
    {
        if (change.Kind == ChangeKind.Snapshot && replica.BeforeApply is { } before)
        {
            await before(change, cancellationToken);
        }

        replica.Apply(change.Kind, change.RowJson, change.OldRowJson, change.Position);
    }
}
