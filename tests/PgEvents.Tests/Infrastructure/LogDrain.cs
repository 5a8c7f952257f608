using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>Reads the log like a consumer would, remembering its position between calls.</summary>
internal sealed class LogDrain(NpgsqlDataSource dataSource, PgEventsSchema schema, int batchSize = 1000)
{
    private readonly ChangeLogReader _reader = new(schema.Settings, "test-reader");

    public LogPosition Position { get; private set; }

    /// <summary>A drain that has read everything committed so far: it sees only what comes next.</summary>
    public static async Task<LogDrain> CaughtUpAsync(NpgsqlDataSource dataSource, PgEventsSchema schema)
    {
        var drain = new LogDrain(dataSource, schema);
        await drain.DrainAsync();
        return drain;
    }

    /// <summary>
    /// Runs <paramref name="ddl"/>, tracks <paramref name="tables"/> (in <c>public</c>) and returns a
    /// drain that has read everything committed so far.
    /// </summary>
    public static async Task<LogDrain> TrackAsync(DatabaseFixture db, PgEventsSchema schema, string ddl, params string[] tables)
    {
        await db.ExecuteAsync(ddl);
        foreach (var table in tables)
        {
            await schema.TrackTableAsync(new TableName("public", table));
        }

        return await CaughtUpAsync(db.DataSource, schema);
    }

    public List<CapturedEvent> Delivered { get; } = [];

    public PositionHole? PendingHole => _reader.PendingHole;

    /// <summary>One read: delivers what is deliverable now and returns it.</summary>
    public async Task<ChangeLogBatch> ReadOnceAsync()
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        var batch = await _reader.ReadAsync(connection, Position, new ReadLimits(batchSize, long.MaxValue), CancellationToken.None);
        Accept(batch);
        return batch;
    }

    /// <summary>
    /// Reads until nothing more is deliverable. Callers use it once every writer has finished, so a
    /// hole can only be a position nobody can commit any more; it resolves as soon as the
    /// transactions in their commit phase when it was seen have ended. The deadline turns a reader
    /// bug into a failure instead of a hang.
    /// </summary>
    public async Task<List<CapturedEvent>> DrainAsync()
    {
        var start = Delivered.Count;
        await using var connection = await dataSource.OpenConnectionAsync();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var batch = await _reader.ReadAsync(connection, Position, new ReadLimits(batchSize, long.MaxValue), CancellationToken.None);
            Accept(batch);
            if (batch.Events.Count > 0)
            {
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
                    $"(holders {string.Join(", ", batch.WaitingOn.Holders)}) with every writer finished.");
            }

            await _reader.WaitForPendingHoleAsync(connection, TimeSpan.FromSeconds(1), CancellationToken.None);
        }
    }

    /// <summary>Waits (at most <paramref name="timeout"/>) until the pending hole's holders have ended.</summary>
    public async Task WaitForPendingHoleAsync(TimeSpan timeout)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await _reader.WaitForPendingHoleAsync(connection, timeout, CancellationToken.None);
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
