using System.Diagnostics.CodeAnalysis;

namespace PgEvents;

/// <summary>
/// One committed change of one row, as delivered in a <see cref="ChangeBatch"/>. The row stays JSON
/// until asked for, so one batch handler can serve tables of different row types.
/// </summary>
public sealed class RowChange
{
    private readonly RowDeserializer _deserializer;

    internal RowChange(CapturedEvent captured, RowDeserializer deserializer)
    {
        Event = captured;
        _deserializer = deserializer;
    }

    /// <summary>What happened.</summary>
    public ChangeKind Kind => Event.Kind;

    /// <summary>The changed table, under its name when the change was captured.</summary>
    public TableName Table => Event.TableName;

    /// <summary>The commit position of the transaction; increases with commit order.</summary>
    public long Position => Event.Position;

    /// <summary>The event id; increases within a transaction in statement and row order.</summary>
    public long EventId => Event.EventId;

    /// <summary>The PostgreSQL transaction id (xid8) that made the change.</summary>
    public ulong TransactionId => Event.TransactionId;

    /// <summary>When the trigger captured the change.</summary>
    public DateTimeOffset CapturedAt => Event.CapturedAt;

    /// <summary>When the transaction took its position, just before its commit.</summary>
    public DateTimeOffset CommittedAt => Event.CommittedAt;

    /// <summary>The row after the change (for a delete, the deleted row) as PostgreSQL rendered it; null for a truncate.</summary>
    public string? RowJson => Event.RowJson;

    /// <summary>The row before the change as JSON for updates, null otherwise.</summary>
    public string? OldRowJson => Event.OldRowJson;

    /// <summary>Whether the change carries a row image: true for inserts, updates and deletes.</summary>
    [MemberNotNullWhen(true, nameof(RowJson))]
    public bool HasRow => Event.RowJson is not null;

    internal CapturedEvent Event { get; }

    /// <summary>Deserializes the row after the change (the deleted row for a delete).</summary>
    /// <typeparam name="TRow">The row type.</typeparam>
    /// <returns>The row, or null for a truncate.</returns>
    /// <exception cref="PgEventsException">The row does not deserialize into <typeparamref name="TRow"/>; the message names the table, position and column.</exception>
    public TRow? GetRow<TRow>() => _deserializer.Deserialize<TRow>(Event, Event.RowJson, "row");

    /// <summary>Deserializes the row before an update.</summary>
    /// <typeparam name="TRow">The row type.</typeparam>
    /// <returns>The old row, or null when the change is not an update.</returns>
    /// <exception cref="PgEventsException">The row does not deserialize into <typeparamref name="TRow"/>.</exception>
    public TRow? GetOldRow<TRow>() => _deserializer.Deserialize<TRow>(Event, Event.OldRowJson, "old row");

    /// <inheritdoc />
    public override string ToString() => $"{Kind} {Table} at {Position}/{EventId}";
}
