namespace PgEvents;

/// <summary>An event whose handlers keep failing; nothing after it is delivered until it succeeds.</summary>
/// <param name="Position">The commit position of its transaction.</param>
/// <param name="EventId">The event id.</param>
/// <param name="Table">The table it belongs to.</param>
/// <param name="Attempts">Failed attempts so far.</param>
/// <param name="LastError">The last failure, type and message.</param>
/// <param name="Since">When the first attempt failed.</param>
public sealed record BlockedEvent(long Position, long EventId, TableName Table, int Attempts, string LastError, DateTimeOffset Since);
