namespace PgEvents;

/// <summary>An event a consumer gave up on under <see cref="FailurePolicy.DeadLetter"/>.</summary>
public sealed class DeadLetter
{
    internal DeadLetter(
        long id, string consumer, long position, long eventId, TableName table, ChangeKind kind, string? rowJson, int attempts, string error, DateTimeOffset deadLetteredAt)
    {
        Id = id;
        ConsumerName = consumer;
        Position = position;
        EventId = eventId;
        Table = table;
        Kind = kind;
        RowJson = rowJson;
        Attempts = attempts;
        Error = error;
        DeadLetteredAt = deadLetteredAt;
    }

    /// <summary>Identifies the dead letter for replay (<see cref="IEventConsumer.ReplayDeadLetterAsync"/>).</summary>
    public long Id { get; }

    /// <summary>The consumer that gave up.</summary>
    public string ConsumerName { get; }

    /// <summary>The commit position of the event's transaction.</summary>
    public long Position { get; }

    /// <summary>The event id.</summary>
    public long EventId { get; }

    /// <summary>The table of the change, under its name when the change was captured.</summary>
    public TableName Table { get; }

    /// <summary>What happened to the row.</summary>
    public ChangeKind Kind { get; }

    /// <summary>The row as JSON; null for a truncate.</summary>
    public string? RowJson { get; }

    /// <summary>Failed attempts.</summary>
    public int Attempts { get; }

    /// <summary>The last error.</summary>
    public string Error { get; }

    /// <summary>When the consumer gave up.</summary>
    public DateTimeOffset DeadLetteredAt { get; }

    /// <summary>The dead letter's id, the change and the last error, for logs.</summary>
    /// <returns>For example <c>dead letter 7: Insert "public"."orders" at 42/1 after 5 attempts: InvalidOperationException: boom</c>.</returns>
    public override string ToString() => $"dead letter {Id}: {Kind} {Table} at {Position}/{EventId} after {Attempts} attempts: {Error}";
}
