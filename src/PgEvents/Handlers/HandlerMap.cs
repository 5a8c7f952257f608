namespace PgEvents;

/// <summary>The handlers of each table, deduplicated, in registration order.</summary>
internal sealed class HandlerMap
{
    private readonly Dictionary<TableName, HandlerRegistration[]> _byTable;

    public HandlerMap(IEnumerable<HandlerRegistration> registrations)
    {
        var unique = new List<HandlerRegistration>();
        foreach (var registration in registrations)
        {
            if (!unique.Exists(r => r.IsSameAs(registration)))
            {
                unique.Add(registration);
            }
        }

        _byTable = unique.GroupBy(r => r.Table).ToDictionary(g => g.Key, g => g.ToArray());
        HasBatchHandlers = unique.Exists(r => r.IsBatch);
    }

    /// <summary>Whether any table has an <see cref="IBatchHandler"/>: then the consumer delivers in batches.</summary>
    public bool HasBatchHandlers { get; }

    public IReadOnlyCollection<TableName> Tables => _byTable.Keys;

    public IReadOnlyList<HandlerRegistration> For(TableName table) =>
        _byTable.TryGetValue(table, out var handlers) ? handlers : [];
}
