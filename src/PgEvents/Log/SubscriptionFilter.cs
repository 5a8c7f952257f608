namespace PgEvents;

/// <summary>
/// The SQL that keeps a consumer's reads to its own events (<c>sql/009_subscriptions.sql</c>): events
/// of its subscribed tables (and of its retired tables up to where they count), snapshot events
/// addressed to it, and everything for a reader that never subscribed. Commands using it bind
/// <c>@consumer</c>.
/// </summary>
internal static class SubscriptionFilter
{
    /// <summary>Common table expressions <c>subscriber</c> and <c>subscription</c>, to follow a <c>WITH</c>.</summary>
    public static string CommonTables(SchemaSettings settings) =>
        $"""
        subscriber AS MATERIALIZED (
            SELECT coalesce(bool_and(c.subscribed_schemas IS NULL), true) AS unfiltered,
                   coalesce(bool_and(c.retired_all), false) AS retired_all,
                   coalesce(max(c.retired_before), 0) AS retired_before
              FROM {settings.Qualify("consumers")} AS c WHERE c.name = @consumer),
        subscription AS MATERIALIZED (SELECT * FROM {settings.Schema}.subscription(@consumer))
        """;

    /// <summary>Whether the event <paramref name="events"/> of the transaction <paramref name="transactions"/> is the consumer's.</summary>
    public static string Condition(string events, string transactions) =>
        $"""
        ({events}.snapshot_for = @consumer
             OR ({events}.snapshot_for IS NULL
                 AND ((SELECT unfiltered FROM subscriber)
                      OR EXISTS (SELECT 1 FROM subscription AS s
                                  WHERE s.schema_name = {events}.schema_name AND s.table_name = {events}.table_name
                                    AND (s.up_to IS NULL OR {transactions}.position <= s.up_to))
                      OR ((SELECT retired_all FROM subscriber) AND {transactions}.position <= (SELECT retired_before FROM subscriber)))))
        """;
}
