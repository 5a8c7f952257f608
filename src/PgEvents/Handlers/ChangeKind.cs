namespace PgEvents;

/// <summary>What happened to a row.</summary>
public enum ChangeKind
{
    /// <summary>A row was inserted.</summary>
    Insert,

    /// <summary>A row was updated and at least one column changed.</summary>
    Update,

    /// <summary>A row was deleted.</summary>
    Delete,

    /// <summary>The whole table was truncated; the event carries no row.</summary>
    Truncate,

    /// <summary>
    /// A row as a snapshot read it (see <see cref="PgEventsOptions.InitialSnapshot"/> and
    /// <see cref="IEventConsumer.RequestSnapshotAsync(string, CancellationToken)"/>): the row's whole
    /// image, newer than every change of it delivered before and older than every change after.
    /// Apply it as an upsert.
    /// </summary>
    Snapshot,
}
