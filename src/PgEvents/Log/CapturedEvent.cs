namespace PgEvents;

/// <summary>One committed row change as stored in the log, with its delivery position.</summary>
internal sealed record CapturedEvent(
    long Position,
    long EventId,
    ulong TransactionId,
    string Schema,
    string Table,
    ChangeKind Kind,
    string? RowJson,
    string? OldRowJson,
    DateTimeOffset CapturedAt,
    DateTimeOffset CommittedAt)
{
    public LogPosition LogPosition => new(Position, EventId);

    public TableName TableName => new(Schema, Table);
}
