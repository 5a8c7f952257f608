namespace PgEvents;

/// <summary>Where PgEvents keeps its tables inside a database, and how it wakes consumers.</summary>
public sealed class PgEventsSchemaOptions
{
    /// <summary>The default schema name.</summary>
    public const string DefaultSchemaName = "pgevents";

    /// <summary>The default notification channel.</summary>
    public const string DefaultNotificationChannel = "pgevents";

    /// <summary>The schema holding the event log, commit records and cursors. Default <c>pgevents</c>.</summary>
    public string SchemaName { get; set; } = DefaultSchemaName;

    /// <summary>
    /// The LISTEN/NOTIFY channel signalled once per committed event-producing transaction.
    /// Default <c>pgevents</c>.
    /// </summary>
    public string NotificationChannel { get; set; } = DefaultNotificationChannel;

    /// <summary>
    /// Capture writes made with <c>session_replication_role = replica</c> (logical replication apply
    /// workers, <c>pg_restore</c>, many sync and migration tools), which skip ordinary triggers.
    /// Default <c>true</c>; set <c>false</c> to leave such writes out of the log. Applied to every
    /// tracked table when it is tracked (tracking again after a change repairs the triggers).
    /// </summary>
    public bool CaptureReplicaWrites { get; set; } = true;
}
