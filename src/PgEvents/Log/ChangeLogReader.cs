using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Reads the log in commit order and returns only what is safe to deliver: the contiguous run of
/// positions after the caller's position. Positions are taken at pre-commit and may therefore
/// become visible slightly out of order; a missing position is either a transaction still
/// committing or one that aborted after taking it. The reader tells the two apart exactly, by
/// asking who is in the commit phase (see <see cref="CommitPhase"/> and <see cref="PositionHole"/>),
/// never by waiting a fixed time.
/// </summary>
/// <remarks>One instance serves one consumer loop; it is not thread-safe.</remarks>
internal sealed class ChangeLogReader
{
    // A hole seen with nobody in the commit phase is decided by one more read; a second new hole
    // in that read gets one more. After that the caller's loop takes over.
    private const int ReadsPerCall = 3;

    private readonly ILogger _logger;
    private readonly CommitPhase _commitPhase;
    private readonly string _sql;
    private readonly string _transactionSql;

    // Reads are filtered to this consumer's events (SubscriptionFilter); a transaction with none is
    // read as a marker, which keeps positions contiguous and lets the cursor move past it.
    private readonly string _consumer;
    private PositionHole? _hole;

    public ChangeLogReader(SchemaSettings settings, string consumer, ILogger? logger = null, TimeProvider? time = null)
    {
        _logger = logger ?? NullLogger.Instance;
        _consumer = consumer;
        _commitPhase = new CommitPhase(settings, time ?? TimeProvider.System);

        // The lateral join walks transactions in position order and each one's events in id order,
        // so a read costs O(limit) whatever the size of the log or of a transaction: the lower bound
        // on event_id is a single expression so that it becomes part of the index condition. (An OR
        // of "later transaction" and "later event" would only filter, and every batch read from the
        // middle of a million-row transaction would walk it again from its first event.)
        // Event ids are identity values starting at 1, so 0 admits every event.
        // The byte bound uses the stored (possibly compressed) size of each image, which PostgreSQL
        // knows without decompressing it, and filters before the images are rendered as text, so an
        // event past the bound costs neither server nor client any detoasting. Rendered text can be
        // larger than the stored size; ReadRowsAsync bounds that. lead() tells whether the next event
        // belongs to the same transaction, for reads that must end at a transaction's end.
        // Events are filtered to this consumer's (SubscriptionFilter); the left join turns a later
        // transaction with none of them into one row without an event, a marker the cursor may pass,
        // and the read position's own transaction, once delivered, into nothing.
        _sql =
            $"""
            WITH {SubscriptionFilter.CommonTables(settings)}
            SELECT position, event_id, xid::text, schema_name, table_name, operation,
                   row_data::text, old_row_data::text, captured_at, committed_at, next_position
              FROM (SELECT r.*,
                           lead(r.position) OVER w AS next_position,
                           sum(r.stored_bytes) OVER w AS bytes_through,
                           row_number() OVER w AS n
                      FROM (SELECT t.position, e.event_id, e.xid, e.schema_name, e.table_name, e.operation,
                                   e.row_data, e.old_row_data, e.captured_at, t.committed_at,
                                   coalesce(pg_column_size(e.row_data), 0) + coalesce(pg_column_size(e.old_row_data), 0) AS stored_bytes
                              FROM (SELECT xid, position, committed_at FROM {settings.Qualify("transactions")}
                                     WHERE position >= @position ORDER BY position LIMIT @limit) AS t
                              LEFT JOIN LATERAL (
                                    SELECT * FROM {settings.Qualify("events")} AS ev
                                     WHERE ev.xid = t.xid AND ev.event_id > CASE WHEN t.position = @position THEN @event_id ELSE 0 END
                                       AND {SubscriptionFilter.Condition("ev", "t")}
                                     ORDER BY ev.event_id LIMIT @limit) AS e ON true
                             WHERE e.event_id IS NOT NULL OR t.position > @position
                             ORDER BY t.position, e.event_id
                             LIMIT @limit) AS r
                    WINDOW w AS (ORDER BY r.position, r.event_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS b
             WHERE n = 1 OR bytes_through <= @max_bytes
             ORDER BY position, event_id
            """;
        _transactionSql =
            $"""
            WITH {SubscriptionFilter.CommonTables(settings)}
            SELECT t.position, e.event_id, e.xid::text, e.schema_name, e.table_name, e.operation,
                   e.row_data::text, e.old_row_data::text, e.captured_at, t.committed_at, NULL::bigint
              FROM {settings.Qualify("transactions")} AS t
              JOIN {settings.Qualify("events")} AS e ON e.xid = t.xid
             WHERE t.position = @position AND e.event_id > @event_id
               AND {SubscriptionFilter.Condition("e", "t")}
             ORDER BY e.event_id
            """;
    }

    /// <summary>The gap the reader is waiting on, if any.</summary>
    public PositionHole? PendingHole => _hole;

    /// <summary>Reads deliverable events after <paramref name="after"/>, within <paramref name="limits"/>.</summary>
    public async Task<ChangeLogBatch> ReadAsync(NpgsqlConnection connection, LogPosition after, ReadLimits limits, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.Count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.Bytes, 1);
        if (_hole is not null && _hole.To <= after.Position)
        {
            _hole = null;
        }

        // Checked before the read, so a hole found abandoned here is judged by a later snapshot.
        if (_hole is { IsAbandoned: false })
        {
            var running = await _commitPhase.StillRunningAsync(connection, _hole.Holders, cancellationToken).ConfigureAwait(false);
            if (running.Count < _hole.Holders.Count)
            {
                _hole = _hole with { Holders = running };
            }
        }

        for (var read = 1; ; read++)
        {
            var rows = await ReadRowsAsync(connection, after, limits, cancellationToken).ConfigureAwait(false);
            var (deliverable, gap) = TakeContiguous(after, rows);
            if (gap is not var (from, to))
            {
                return await EndBatchAsync(connection, rows, deliverable, limits, waitingOn: null, cancellationToken).ConfigureAwait(false);
            }

            if (_hole is null || !_hole.Covers(from, to))
            {
                // Whoever took a missing position announced itself before the later position that
                // this read showed was taken: it is among the holders now, or it has ended.
                var holders = await _commitPhase.HoldersAsync(connection, cancellationToken).ConfigureAwait(false);
                _hole = new PositionHole(from, to, holders);
                PgEventsLog.HoleObserved(_logger, from, to, holders.Count);
                if (holders.Count == 0 && deliverable == 0 && read < ReadsPerCall)
                {
                    continue;
                }
            }

            return await EndBatchAsync(connection, rows, deliverable, limits, _hole, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The first <paramref name="deliverable"/> rows as a batch; for whole-transaction reads cut back
    /// to the last transaction's end, or, when the first transaction alone exceeds the limits, that
    /// whole transaction read on its own. Transactions with nothing for this consumer at the end
    /// let the cursor pass them.
    /// </summary>
    private async Task<ChangeLogBatch> EndBatchAsync(
        NpgsqlConnection connection, List<LogRow> rows, int deliverable, ReadLimits limits, PositionHole? waitingOn, CancellationToken cancellationToken)
    {
        var end = deliverable;
        if (limits.WholeTransactions && end > 0 && rows[end - 1].Continues)
        {
            while (end > 0 && rows[end - 1].Continues)
            {
                end--;
            }

            if (end == 0)
            {
                // Only an event continues its transaction, so the first row is one.
                var first = rows[0].Event!;
                var whole = await ReadRowsAsync(
                    connection, _transactionSql, new LogPosition(first.Position, first.EventId - 1), limit: null, maxBytes: null, cancellationToken).ConfigureAwait(false);
                return new ChangeLogBatch(whole.ConvertAll(r => r.Event!), waitingOn, endsTransaction: true);
            }
        }

        var events = new List<CapturedEvent>(end);
        for (var i = 0; i < end; i++)
        {
            if (rows[i].Event is { } captured)
            {
                events.Add(captured);
            }
        }

        // The read never returns a marker for its own position, so a trailing marker is always news.
        long? passedThrough = end > 0 && rows[end - 1].Event is null ? rows[end - 1].Position : null;
        return new ChangeLogBatch(events, waitingOn, endsTransaction: end == 0 || !rows[end - 1].Continues, passedThrough);
    }

    /// <summary>
    /// Waits, for at most <paramref name="timeout"/>, until the pending hole's holders have ended, so
    /// the next read can decide it. Returns at once when there is nothing to wait for.
    /// </summary>
    public Task WaitForPendingHoleAsync(NpgsqlConnection connection, TimeSpan timeout, CancellationToken cancellationToken) =>
        _hole is { IsAbandoned: false } hole
            ? _commitPhase.WaitAsync(connection, hole.Holders, timeout, cancellationToken)
            : Task.CompletedTask;

    private Task<List<LogRow>> ReadRowsAsync(NpgsqlConnection connection, LogPosition after, ReadLimits limits, CancellationToken cancellationToken) =>
        // One row more than asked for, so that whether the last kept event ends its transaction is known.
        ReadRowsAsync(connection, _sql, after, limits.Count + 1, limits.Bytes, cancellationToken);

    private async Task<List<LogRow>> ReadRowsAsync(
        NpgsqlConnection connection, string sql, LogPosition after, int? limit, long? maxBytes, CancellationToken cancellationToken)
    {
        var rows = new List<LogRow>();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("position", after.Position);
        command.Parameters.AddWithValue("event_id", after.EventId);
        command.Parameters.AddWithValue("consumer", _consumer);
        if (limit is { } count)
        {
            command.Parameters.AddWithValue("limit", count);
            command.Parameters.AddWithValue("max_bytes", maxBytes ?? long.MaxValue);
        }

        // Prepared on the working session, whose connection lives as long as the session: parsing and
        // planning this statement (the subscription's function inlined) took longer than running it,
        // about 6 ms of server CPU per read, spent again on every read while writers wait for the CPU.
        // Once prepared, PostgreSQL settles on a generic plan after a few reads. Npgsql keeps the
        // statement per physical connection, so later commands with this text only bind and execute.
        await command.PrepareAsync(cancellationToken).ConfigureAwait(false);

        long textBytes = 0;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            // Stop at the extra row (it only told whether the previous one ends its transaction; it
            // is read next time), or at a row that would cross the byte bound: the rendered text of
            // compressed images can exceed what the server estimated. The first row is always kept.
            if (limit is { } most && rows.Count == most - 1)
            {
                break;
            }

            if (reader.IsDBNull(1))
            {
                // A committed transaction with nothing for this consumer (other tables, another
                // consumer's snapshot): a marker.
                rows.Add(new LogRow(null, reader.GetInt64(0), Continues: false));
                continue;
            }

            var captured = new CapturedEvent(
                Position: reader.GetInt64(0),
                EventId: reader.GetInt64(1),
                TransactionId: ParseXid(reader.GetString(2)),
                Schema: reader.GetString(3),
                Table: reader.GetString(4),
                Kind: ParseKind(reader.GetString(5)),
                RowJson: reader.IsDBNull(6) ? null : reader.GetString(6),
                OldRowJson: reader.IsDBNull(7) ? null : reader.GetString(7),
                CapturedAt: reader.GetFieldValue<DateTimeOffset>(8),
                CommittedAt: reader.GetFieldValue<DateTimeOffset>(9));
            var size = (captured.RowJson?.Length ?? 0) + (captured.OldRowJson?.Length ?? 0);
            if (limit is not null && rows.Count > 0 && textBytes + size > maxBytes)
            {
                break;
            }

            textBytes += size;
            var continues = reader.IsDBNull(10) ? limit is null : reader.GetInt64(10) == captured.Position;
            rows.Add(new LogRow(captured, captured.Position, continues));
        }

        if (limit is null && rows.Count > 0)
        {
            rows[^1] = rows[^1] with { Continues = false };
        }

        return rows;
    }

    /// <summary>
    /// An event as read (null for a transaction with nothing for this consumer), its position, and
    /// whether the next event belongs to the same transaction.
    /// </summary>
    private readonly record struct LogRow(CapturedEvent? Event, long Position, bool Continues);

    /// <summary>
    /// How many rows from the start are deliverable, and the first gap that stops them (if any).
    /// A gap inside the pending hole whose holders have all ended is passed over: nothing can fill it.
    /// </summary>
    private (int Deliverable, (long From, long To)? Gap) TakeContiguous(LogPosition after, List<LogRow> rows)
    {
        var current = after.Position;
        for (var i = 0; i < rows.Count; i++)
        {
            var position = rows[i].Position;
            if (position == current || position == current + 1)
            {
                current = position;
                continue;
            }

            var from = current + 1;
            var to = position - 1;
            if (_hole is { IsAbandoned: true } && _hole.Covers(from, to))
            {
                PgEventsLog.HoleSkipped(_logger, from, to);
                _hole = null;
                current = position;
                continue;
            }

            return (i, (from, to));
        }

        return (rows.Count, null);
    }

    private static ulong ParseXid(string text) => ulong.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);

    internal static ChangeKind ParseKind(string operation) => operation switch
    {
        "INSERT" => ChangeKind.Insert,
        "UPDATE" => ChangeKind.Update,
        "DELETE" => ChangeKind.Delete,
        "TRUNCATE" => ChangeKind.Truncate,
        "SNAPSHOT" => ChangeKind.Snapshot,
        _ => throw new PgEventsException($"The event log holds an unknown operation '{operation}'."),
    };
}
