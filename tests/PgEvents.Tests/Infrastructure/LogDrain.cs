using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>Reads the log like a consumer would, remembering its position between calls.</summary>
internal sealed class LogDrain(NpgsqlDataSource dataSource, PgEventsSchema schema, int batchSize = 1000)
{
    private readonly ChangeLogReader _reader = new(schema.Settings);

    public LogPosition Position { get; private set; }

    public List<CapturedEvent> Delivered { get; } = [];

    public PositionHole? PendingHole => _reader.PendingHole;

    /// <summary>One read: delivers what is deliverable now and returns it.</summary>
    public async Task<ChangeLogBatch> ReadOnceAsync()
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        var batch = await _reader.ReadAsync(connection, Position, batchSize, CancellationToken.None);
        Accept(batch);
        return batch;
    }

    /// <summary>
    /// Reads until nothing more is deliverable. Callers use it once every writer has finished, so a
    /// hole can only be an aborted position; it resolves as soon as the transactions that were running
    /// when it was seen have ended (pool resets, other test classes). The deadline turns a reader bug
    /// into a failure instead of a hang.
    /// </summary>
    public async Task<List<CapturedEvent>> DrainAsync()
    {
        var start = Delivered.Count;
        await using var connection = await dataSource.OpenConnectionAsync();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var pause = 1;
        while (true)
        {
            var batch = await _reader.ReadAsync(connection, Position, batchSize, CancellationToken.None);
            Accept(batch);
            if (batch.Events.Count > 0)
            {
                pause = 1;
                continue;
            }

            if (batch.WaitingOn is null)
            {
                return Delivered.GetRange(start, Delivered.Count - start);
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException(
                    $"The reader stays blocked on positions {batch.WaitingOn.From}..{batch.WaitingOn.To} " +
                    $"(blockers {string.Join(", ", batch.WaitingOn.Blockers)}) with every writer finished.");
            }

            await Task.Delay(pause);
            pause = Math.Min(pause * 2, 100);
        }
    }

    private void Accept(ChangeLogBatch batch)
    {
        foreach (var captured in batch.Events)
        {
            captured.LogPosition.Should().BeGreaterThan(Position, "the reader must never go backwards");
            Position = captured.LogPosition;
            Delivered.Add(captured);
        }
    }
}
