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
}
