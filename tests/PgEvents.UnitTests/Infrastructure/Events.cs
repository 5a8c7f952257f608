namespace PgEvents.UnitTests.Infrastructure;

/// <summary>Builds captured events without a database.</summary>
public static class Events
{
    public static readonly DateTimeOffset Committed = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    internal static CapturedEvent Captured(
        string schema = "public",
        string table = "orders",
        long position = 12,
        long eventId = 3,
        ChangeKind kind = ChangeKind.Insert,
        string? row = "{}",
        string? oldRow = null) =>
        new(position, eventId, 4711, schema, table, kind, row, oldRow, Committed, Committed);
}
