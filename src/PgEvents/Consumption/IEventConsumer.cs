namespace PgEvents;

/// <summary>
/// A named consumer of the commit-ordered log: installs the schema and the capture triggers of its
/// mapped tables, then delivers every committed change to its handlers, at least once, in order.
/// </summary>
public interface IEventConsumer
{
    /// <summary>The consumer name; its cursor is stored under it.</summary>
    string Name { get; }

    /// <summary>Installs or upgrades the schema and tracks every mapped table. Idempotent.</summary>
    /// <param name="cancellationToken">Cancels the installation.</param>
    /// <returns>A task that completes when the schema and triggers are in place.</returns>
    Task InstallAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Consumes until <paramref name="cancellationToken"/> is cancelled, reconnecting after
    /// connection failures. Returns normally when cancelled; the event in flight, if any, is
    /// delivered again by the next run.
    /// </summary>
    /// <param name="cancellationToken">Stops consuming.</param>
    /// <returns>A task that completes when the consumer has stopped.</returns>
    /// <exception cref="InvalidOperationException">This instance is already running.</exception>
    Task RunAsync(CancellationToken cancellationToken);

    /// <summary>Reads where the consumer stands: head, cursor, lag, and the event it is blocked on.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>A snapshot of the consumer's state.</returns>
    Task<ConsumerStatus> GetStatusAsync(CancellationToken cancellationToken = default);

    /// <summary>Lists the events this consumer dead-lettered (<see cref="FailurePolicy.DeadLetter"/>), oldest first.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The dead letters.</returns>
    Task<IReadOnlyList<DeadLetter>> GetDeadLettersAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs the handlers for one dead letter now, outside the commit order, and removes it when they
    /// succeed (together with a transactional handler's writes). When they fail it stays, with the new error.
    /// </summary>
    /// <param name="id">The dead letter's id.</param>
    /// <param name="cancellationToken">Cancels the replay.</param>
    /// <returns>A task that completes when the dead letter was handled and removed.</returns>
    Task ReplayDeadLetterAsync(long id, CancellationToken cancellationToken = default);

    // Two names, not two ResetCursorAsync overloads that each take an optional token: such overloads
    // cannot later gain a parameter without breaking callers (PublicApiAnalyzers RS0026), and a
    // required token would make every call spell one out.

    /// <summary>
    /// Moves this consumer's cursor so that delivery restarts with the transaction at
    /// <paramref name="position"/> (earlier: replay; later: skip ahead). A running instance, here or
    /// elsewhere, picks the change up at once.
    /// </summary>
    /// <param name="position">The first position to deliver again.</param>
    /// <param name="cancellationToken">Cancels the reset.</param>
    /// <returns>A task that completes when the cursor is moved.</returns>
    Task ResetCursorToPositionAsync(long position, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves this consumer's cursor so that delivery restarts with the first transaction committed at
    /// or after <paramref name="committedSince"/> (earlier: replay; later: skip ahead). A running
    /// instance, here or elsewhere, picks the change up at once.
    /// </summary>
    /// <param name="committedSince">The earliest commit time to deliver again.</param>
    /// <param name="cancellationToken">Cancels the reset.</param>
    /// <returns>A task that completes when the cursor is moved.</returns>
    Task ResetCursorToTimeAsync(DateTimeOffset committedSince, CancellationToken cancellationToken = default);

    /// <summary>
    /// Snapshots <paramref name="table"/> again, e.g. to repair a replica: the running consumer (here
    /// or in another process) delivers every row the table holds as a <see cref="ChangeKind.Snapshot"/>
    /// change, in primary-key chunks interleaved with live changes and in commit order with them.
    /// A snapshot of the table that is still running starts over. Progress is in <see cref="ConsumerStatus.Snapshots"/>.
    /// </summary>
    /// <param name="table"><c>schema.table</c>, or <c>table</c> for <c>public.table</c>; a table this consumer maps.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <returns>A task that completes when the snapshot is recorded (not when it is delivered).</returns>
    /// <exception cref="PgEventsException">The table is not mapped by this consumer, does not exist, or has no primary key.</exception>
    Task RequestSnapshotAsync(string table, CancellationToken cancellationToken = default);
}
