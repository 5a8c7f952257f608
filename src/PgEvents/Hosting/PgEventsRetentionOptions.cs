namespace PgEvents;

/// <summary>
/// How the active consumer deletes the events every registered consumer has passed
/// (<see cref="PgEventsOptions.Retention"/>); <see cref="PgEventsSchema.PurgeAsync"/> does the same by hand.
/// </summary>
public sealed class PgEventsRetentionOptions
{
    /// <summary>
    /// Events that every registered consumer has passed and that committed longer ago than this are
    /// deleted by a background pass. Null keeps everything. Default 7 days.
    /// </summary>
    public TimeSpan? Age { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How often the retention pass runs. Default 5 minutes.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Transactions deleted per retention statement, keeping each delete short. Default 1000.</summary>
    public int BatchSize { get; set; } = 1000;
}
