namespace PgEvents;

/// <summary>
/// What a consumer does with an event that reaches it with no handler registered for its table: an
/// event of a table it no longer maps, committed before it started without it, or of a mapped table
/// renamed since. A consumer does not read tables it never mapped.
/// </summary>
public enum UnmappedTablePolicy
{
    /// <summary>Treat it as a failing event: retry with backoff and deliver nothing later. The default.</summary>
    Block,

    /// <summary>Skip it, with a warning in the log, and move on.</summary>
    Skip,
}
