namespace PgEvents;

/// <summary>
/// The logger categories PgEvents writes to. They are part of the library's contract (users filter
/// on them in configuration, e.g. <c>"Logging:LogLevel:PgEvents.Consumer": "Warning"</c>), so they
/// are fixed names rather than type names that a refactoring would change. Npgsql's own messages
/// about PgEvents' connections go to Npgsql's categories through the same logger factory.
/// </summary>
internal static class PgEventsLogCategories
{
    /// <summary>Delivery, retries, dead letters, leases, reconnects and cursor resets.</summary>
    public const string Consumer = "PgEvents.Consumer";

    /// <summary>How the log reader resolves position holes.</summary>
    public const string Log = "PgEvents.Log";

    /// <summary>Retention passes that delete delivered events.</summary>
    public const string Retention = "PgEvents.Retention";

    /// <summary>Schema scripts applied and tables tracked or untracked.</summary>
    public const string Schema = "PgEvents.Schema";
}
