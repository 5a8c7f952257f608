namespace PgEvents;

/// <summary>An event a consumer gave up on under <see cref="FailurePolicy.DeadLetter"/>.</summary>
/// <param name="Id">Identifies the dead letter for replay.</param>
/// <param name="Consumer">The consumer that gave up.</param>
/// <param name="Position">The commit position of the event's transaction.</param>
/// <param name="EventId">The event id.</param>
/// <param name="Table">The table of the change.</param>
/// <param name="Kind">What happened to the row.</param>
/// <param name="RowJson">The row as JSON; null for a truncate.</param>
/// <param name="Attempts">Failed attempts.</param>
/// <param name="Error">The last error.</param>
/// <param name="DeadLetteredAt">When the consumer gave up.</param>
public sealed record DeadLetter(
    long Id, string Consumer, long Position, long EventId, TableName Table, ChangeKind Kind, string? RowJson, int Attempts, string Error, DateTimeOffset DeadLetteredAt);
