namespace PgEvents;

/// <summary>What a consumer does with an event of a table no handler is registered for.</summary>
public enum UnmappedTablePolicy
{
    /// <summary>Treat it as a failing event: retry with backoff and deliver nothing later. The default.</summary>
    Block,

    /// <summary>Skip it, with a warning in the log, and move on.</summary>
    Skip,
}
