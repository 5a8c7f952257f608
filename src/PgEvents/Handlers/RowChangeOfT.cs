using System.Diagnostics.CodeAnalysis;
using Npgsql;

namespace PgEvents;

/// <summary>One committed change of one row, as delivered to an <see cref="IRowHandler{TRow}"/>.</summary>
/// <typeparam name="TRow">The type rows are deserialized into.</typeparam>
public sealed class RowChange<TRow>
{
    private readonly CapturedEvent _event;
    private readonly EventTransactionScope _transaction;

    internal RowChange(CapturedEvent captured, TRow? row, TRow? oldRow, EventTransactionScope transaction)
    {
        _event = captured;
        _transaction = transaction;
        Row = row;
        OldRow = oldRow;
    }

    /// <summary>What happened.</summary>
    public ChangeKind Kind => _event.Kind;

    /// <summary>The row after the change; for a delete, the deleted row; null for a truncate.</summary>
    public TRow? Row { get; }

    /// <summary>The row before the change; only for updates, null otherwise.</summary>
    public TRow? OldRow { get; }

    /// <summary>The changed table, under its name when the change was captured.</summary>
    public TableName Table => _event.TableName;

    /// <summary>The commit position of the transaction; increases with commit order.</summary>
    public long Position => _event.Position;

    /// <summary>The event id; increases within a transaction in statement and row order.</summary>
    public long EventId => _event.EventId;

    /// <summary>The PostgreSQL transaction id (xid8) that made the change.</summary>
    public ulong TransactionId => _event.TransactionId;

    /// <summary>When the trigger captured the change.</summary>
    public DateTimeOffset CapturedAt => _event.CapturedAt;

    /// <summary>When the transaction took its position, just before its commit.</summary>
    public DateTimeOffset CommittedAt => _event.CommittedAt;

    /// <summary>The row as PostgreSQL rendered it (<c>to_jsonb</c>), or null for a truncate.</summary>
    public string? RowJson => _event.RowJson;

    /// <summary>The old row as JSON for updates, null otherwise.</summary>
    public string? OldRowJson => _event.OldRowJson;

    /// <summary>
    /// Whether the change carries a row: true for inserts, updates, deletes and snapshots, false for a
    /// truncate. When true, <see cref="Row"/> and <see cref="RowJson"/> are not null, so
    /// <c>if (change.HasRow) Use(change.Row);</c> needs no <c>!</c>.
    /// </summary>
    [MemberNotNullWhen(true, nameof(Row), nameof(RowJson))]
    public bool HasRow => RowJson is not null && Row is not null;

    /// <summary>
    /// The transaction in which the consumer will advance its cursor past this event, on the
    /// database holding the PgEvents schema. Writes made through it commit atomically with the
    /// cursor, so a projection in the same database is applied effectively once. Do not commit or
    /// roll it back yourself; throw to roll it back.
    /// </summary>
    /// <param name="cancellationToken">Cancels beginning the transaction.</param>
    /// <returns>The open transaction; its <see cref="NpgsqlTransaction.Connection"/> runs commands in it.</returns>
    public ValueTask<NpgsqlTransaction> GetTransactionAsync(CancellationToken cancellationToken = default) =>
        _transaction.GetAsync(cancellationToken);

    /// <inheritdoc />
    public override string ToString() => $"{Kind} {Table} at {Position}/{EventId}";
}
