using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Batching;

/// <summary>The row type of every batching test table: <c>(id bigint PRIMARY KEY, label text NOT NULL)</c>.</summary>
public sealed record BatchRow(long Id, string Label) : ITestRow;

/// <summary>One call of a batch handler, as it was made.</summary>
public sealed record SeenBatch(string Handler, IReadOnlyList<RowChange> Changes, bool EndsAtTransactionBoundary)
{
    /// <summary>Bytes of rendered row images, as the client-side bound counts them.</summary>
    public long TextBytes => Changes.Sum(c => (long)(c.RowJson?.Length ?? 0) + (c.OldRowJson?.Length ?? 0));
}

/// <summary>One event of the log, read straight from its tables.</summary>
public sealed record LoggedEvent(long Position, long EventId, ulong TransactionId, string Table, long? Id);

/// <summary>
/// Collects the calls of batch handlers in the order they were made and lets tests wait for a
/// condition, signalled by the handlers (no sleeping in the hope that delivery has happened).
/// </summary>
public sealed class BatchLog
{
    private readonly List<SeenBatch> _batches = [];
    private readonly List<(Func<IReadOnlyList<SeenBatch>, bool> Condition, TaskCompletionSource Signal)> _waiters = [];

    public IReadOnlyList<SeenBatch> Batches
    {
        get
        {
            lock (_batches)
            {
                return _batches.ToArray();
            }
        }
    }

    public IReadOnlyList<SeenBatch> Of(string handler) => Batches.Where(b => b.Handler == handler).ToList();

    public IReadOnlyList<RowChange> ChangesOf(string handler) => Of(handler).SelectMany(b => b.Changes).ToList();

    public void Record(string handler, ChangeBatch batch)
    {
        var seen = new SeenBatch(handler, batch.ToList(), batch.EndsAtTransactionBoundary);
        lock (_batches)
        {
            _batches.Add(seen);
            foreach (var waiter in _waiters.Where(w => w.Condition(_batches)).ToList())
            {
                waiter.Signal.TrySetResult();
                _waiters.Remove(waiter);
            }
        }
    }

    /// <summary>Waits until <paramref name="handler"/> was given at least <paramref name="count"/> changes in all.</summary>
    public Task WaitForChangesAsync(string handler, int count, TimeSpan? timeout = null) =>
        WaitUntilAsync(batches => batches.Where(b => b.Handler == handler).Sum(b => b.Changes.Count) >= count,
            $"{count} changes for {handler}", timeout);

    /// <summary>Waits until <paramref name="handler"/> has seen the row with <paramref name="id"/> (at least once).</summary>
    public Task WaitForIdAsync(string handler, long id, TimeSpan? timeout = null) =>
        WaitUntilAsync(batches => batches.Where(b => b.Handler == handler).SelectMany(b => b.Changes).Any(c => IdOf(c) == id),
            $"row {id} delivered to {handler}", timeout);

    public async Task WaitUntilAsync(Func<IReadOnlyList<SeenBatch>, bool> condition, string what, TimeSpan? timeout = null)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_batches)
        {
            if (condition(_batches))
            {
                return;
            }

            _waiters.Add((condition, signal));
        }

        var limit = timeout ?? TimeSpan.FromSeconds(60);
        try
        {
            await signal.Task.WaitAsync(limit);
        }
        catch (TimeoutException)
        {
            int batches;
            int changes;
            lock (_batches)
            {
                _waiters.RemoveAll(w => w.Signal == signal);
                batches = _batches.Count;
                changes = _batches.Sum(b => b.Changes.Count);
            }

            throw new TimeoutException($"Expected {what} within {limit}, got {batches} batches with {changes} changes.");
        }
    }

    public static long? IdOf(RowChange change) => change.HasRow ? change.GetRow<BatchRow>()!.Id : null;
}

/// <summary>Records every batch it gets as "batch".</summary>
public sealed class RecordingBatchHandler(BatchLog log) : IBatchHandler
{
    public Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        log.Record("batch", batch);
        return Task.CompletedTask;
    }
}

/// <summary>A second, distinct batch handler type: records as "other".</summary>
public sealed class OtherBatchHandler(BatchLog log) : IBatchHandler
{
    public Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        log.Record("other", batch);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Fails every batch that holds the row a <see cref="FailureSwitch"/> names (while it fails, counting
/// one attempt per such batch); records the others as "poison".
/// </summary>
public sealed class PoisonBatchHandler(BatchLog log, FailureSwitch failures) : IBatchHandler
{
    public Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        if (batch.Any(c => BatchLog.IdOf(c) == failures.FailingId))
        {
            var attempt = failures.Attempt();
            if (failures.Failing && attempt <= failures.FailFirst)
            {
                throw new InvalidOperationException(failures.Message(failures.FailingId, attempt));
            }
        }

        log.Record("poison", batch);
        return Task.CompletedTask;
    }
}

/// <summary>Decides, call by call, whether a flaky handler fails: every <see cref="Every"/>-th call does.</summary>
public sealed class FlakySchedule
{
    private int _calls;

    public int Every { get; set; } = 3;

    public bool Enabled { get; set; } = true;

    public int Failures => Volatile.Read(ref _failures);

    private int _failures;

    public bool NextFails()
    {
        var call = Interlocked.Increment(ref _calls);
        if (Enabled && call % Every == 0)
        {
            Interlocked.Increment(ref _failures);
            return true;
        }

        return false;
    }
}

/// <summary>Records every batch as "flaky", but fails the calls the <see cref="FlakySchedule"/> picks (before recording).</summary>
public sealed class FlakyBatchHandler(BatchLog log, FlakySchedule schedule) : IBatchHandler
{
    public Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        if (schedule.NextFails())
        {
            throw new InvalidOperationException("flaky batch handler fails this call");
        }

        log.Record("flaky", batch);
        return Task.CompletedTask;
    }
}

internal static class BatchTesting
{
    /// <summary>Every event of a log, in delivery order, read straight from its tables.</summary>
    public static async Task<List<LoggedEvent>> LogAsync(DatabaseFixture db, string schema, string? table = null)
    {
        await using var command = db.DataSource.CreateCommand(
            $"""
            SELECT t.position, e.event_id, e.xid::text, e.table_name, (e.row_data->>'id')::bigint
              FROM {schema}.events e JOIN {schema}.transactions t ON t.xid = e.xid
             WHERE @table::text IS NULL OR e.table_name = @table
             ORDER BY t.position, e.event_id
            """);
        command.Parameters.Add(new NpgsqlParameter("table", NpgsqlTypes.NpgsqlDbType.Text) { Value = (object?)table ?? DBNull.Value });
        var events = new List<LoggedEvent>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            events.Add(new LoggedEvent(reader.GetInt64(0), reader.GetInt64(1), ulong.Parse(reader.GetString(2), System.Globalization.CultureInfo.InvariantCulture),
                reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetInt64(4)));
        }

        return events;
    }

    public static IEnumerable<(long Position, long EventId)> Keys(this IEnumerable<RowChange> changes) => changes.Select(c => (c.Position, c.EventId));

    public static IEnumerable<(long Position, long EventId)> Keys(this IEnumerable<LoggedEvent> events) => events.Select(e => (e.Position, e.EventId));

    public static IEnumerable<(long Position, long EventId)> Keys(this IEnumerable<CapturedEvent> events) => events.Select(e => (e.Position, e.EventId));

    /// <summary>
    /// At-least-once order: after dropping repeats, the sequence is exactly <paramref name="expected"/>,
    /// and a repeat only ever goes back to something already delivered.
    /// </summary>
    public static void ShouldBeCompleteAndOrderedWithRepeats<T>(IEnumerable<T> delivered, IReadOnlyList<T> expected, string because)
        where T : notnull
    {
        var seen = new HashSet<T>();
        var first = new List<T>();
        foreach (var item in delivered)
        {
            if (seen.Add(item))
            {
                first.Add(item);
            }
        }

        first.Should().Equal(expected, because);
    }

    /// <summary>A consumer's log schema installed ahead of the consumer, with <paramref name="tables"/> tracked: writes made now are waiting when it starts.</summary>
    public static async Task<PgEventsSchema> TrackAheadAsync(DatabaseFixture db, string consumerName, params string[] tables)
    {
        var schema = await db.InstallAsync("log_" + consumerName);
        foreach (var table in tables)
        {
            await schema.TrackTableAsync(TableName.Parse(table));
        }

        return schema;
    }

    /// <summary>Runs <paramref name="statements"/> in one transaction on a connection of its own.</summary>
    public static async Task InTransactionAsync(DatabaseFixture db, params string[] statements)
    {
        await using var connection = await db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        foreach (var sql in statements)
        {
            await using var command = new NpgsqlCommand(sql, connection, transaction);
            await command.ExecuteNonQueryAsync();
        }

        await transaction.CommitAsync();
    }
}
