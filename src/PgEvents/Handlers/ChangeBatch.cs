using System.Collections;
using Npgsql;

namespace PgEvents;

/// <summary>
/// The changes one <see cref="IBatchHandler"/> receives in one call, in delivery order. With
/// <see cref="BatchBoundary.Transaction"/> a batch holds whole source transactions (see
/// <see cref="EndsAtTransactionBoundary"/> for the exceptions).
/// </summary>
public sealed class ChangeBatch : IReadOnlyList<RowChange>
{
    private readonly IReadOnlyList<RowChange> _changes;
    private readonly EventTransactionScope _transaction;

    internal ChangeBatch(IReadOnlyList<RowChange> changes, bool endsTransaction, EventTransactionScope transaction)
    {
        _changes = changes;
        _transaction = transaction;
        EndsAtTransactionBoundary = endsTransaction;
    }

    /// <summary>The number of changes.</summary>
    public int Count => _changes.Count;

    /// <summary>
    /// Whether the delivered batch ends at the end of a source transaction: nothing more of the
    /// transaction of its last change follows. True with <see cref="BatchBoundary.Transaction"/>,
    /// except for the one-change batches that isolate a failing change under
    /// <see cref="FailurePolicy.DeadLetter"/> and for replayed dead letters.
    /// </summary>
    public bool EndsAtTransactionBoundary { get; }

    /// <summary>The change at <paramref name="index"/>.</summary>
    /// <param name="index">Zero-based, in delivery order.</param>
    public RowChange this[int index] => _changes[index];

    /// <summary>
    /// The transaction in which the consumer will advance its cursor past this batch, on the database
    /// holding the PgEvents schema. Writes made through it commit atomically with the cursor, so a
    /// projection in the same database is applied effectively once. Do not commit or roll it back
    /// yourself; throw to roll it back.
    /// </summary>
    /// <param name="cancellationToken">Cancels beginning the transaction.</param>
    /// <returns>The open transaction; its <see cref="NpgsqlTransaction.Connection"/> runs commands in it.</returns>
    public ValueTask<NpgsqlTransaction> GetTransactionAsync(CancellationToken cancellationToken = default) =>
        _transaction.GetAsync(cancellationToken);

    /// <inheritdoc />
    public IEnumerator<RowChange> GetEnumerator() => _changes.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc />
    public override string ToString() =>
        Count == 0 ? "empty batch" : $"{Count} changes from {_changes[0].Position}/{_changes[0].EventId} to {_changes[^1].Position}/{_changes[^1].EventId}";
}
