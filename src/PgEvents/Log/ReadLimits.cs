namespace PgEvents;

/// <summary>How much one read of the log may return.</summary>
/// <param name="Count">Most events.</param>
/// <param name="Bytes">
/// Most bytes of row images, roughly: a read stops before the event that would cross it, but always
/// returns at least one event, however large.
/// </param>
/// <param name="WholeTransactions">
/// End only after the last event of a transaction; a transaction larger than the limits is then
/// returned whole, on its own.
/// </param>
internal readonly record struct ReadLimits(int Count, long Bytes, bool WholeTransactions = false);
