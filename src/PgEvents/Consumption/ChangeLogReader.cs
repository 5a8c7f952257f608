using System.Data;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Reads the log in commit order and returns only what is safe to deliver: the contiguous run of
/// positions after the caller's position. Positions are taken at pre-commit and may therefore
/// become visible slightly out of order; a missing position is either a transaction still
/// committing or one that aborted after taking it. The reader tells the two apart exactly (see
/// <see cref="PositionHole"/>), never by waiting a fixed time.
/// </summary>
/// <remarks>One instance serves one consumer loop; it is not thread-safe.</remarks>
internal sealed class ChangeLogReader
{
    private readonly SchemaSettings _settings;
    private readonly ILogger _logger;
    private readonly string _sql;
    private PositionHole? _hole;

    public ChangeLogReader(SchemaSettings settings, ILogger? logger = null)
    {
        _settings = settings;
        _logger = logger ?? NullLogger.Instance;

        // The lateral join walks transactions in position order and each one's events in id order,
        // so a read costs O(limit) whatever the size of the log or of a transaction: the lower bound
        // on event_id is a single expression so that it becomes part of the index condition. (An OR
        // of "later transaction" and "later event" would only filter, and every batch read from the
        // middle of a million-row transaction would walk it again from its first event.)
        // Event ids are identity values starting at 1, so 0 admits every event.
        // The snapshot comes from the same statement, hence the same snapshot as the rows: the hole
        // rule compares what is visible with what was still running at that very moment.
        _sql =
            $"""
            WITH snap AS MATERIALIZED (SELECT pg_current_snapshot()::text AS snapshot)
            SELECT t.position, e.event_id, e.xid::text, e.schema_name, e.table_name, e.operation,
                   e.row_data::text, e.old_row_data::text, e.captured_at, t.committed_at, snap.snapshot
              FROM (SELECT xid, position, committed_at FROM {_settings.Qualify("transactions")}
                     WHERE position >= @position ORDER BY position LIMIT @limit) AS t
             CROSS JOIN LATERAL (
                    SELECT * FROM {_settings.Qualify("events")} AS ev
                     WHERE ev.xid = t.xid AND ev.event_id > CASE WHEN t.position = @position THEN @event_id ELSE 0 END
                     ORDER BY ev.event_id LIMIT @limit) AS e
             CROSS JOIN snap
             ORDER BY t.position, e.event_id
             LIMIT @limit
            """;
    }

    /// <summary>The gap the reader is waiting on, if any.</summary>
    public PositionHole? PendingHole => _hole;

    /// <summary>Reads up to <paramref name="limit"/> deliverable events after <paramref name="after"/>.</summary>
    public async Task<ChangeLogBatch> ReadAsync(NpgsqlConnection connection, LogPosition after, int limit, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        if (_hole is not null && _hole.To <= after.Position)
        {
            _hole = null;
        }

        var rows = new List<CapturedEvent>();
        string? snapshotText = null;
        await using (var command = new NpgsqlCommand(_sql, connection))
        {
            command.Parameters.AddWithValue("position", after.Position);
            command.Parameters.AddWithValue("event_id", after.EventId);
            command.Parameters.AddWithValue("limit", limit);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                snapshotText ??= reader.GetString(10);
                rows.Add(new CapturedEvent(
                    Position: reader.GetInt64(0),
                    EventId: reader.GetInt64(1),
                    TransactionId: ParseXid(reader.GetString(2)),
                    Schema: reader.GetString(3),
                    Table: reader.GetString(4),
                    Kind: ParseKind(reader.GetString(5)),
                    RowJson: reader.IsDBNull(6) ? null : reader.GetString(6),
                    OldRowJson: reader.IsDBNull(7) ? null : reader.GetString(7),
                    CapturedAt: reader.GetFieldValue<DateTimeOffset>(8),
                    CommittedAt: reader.GetFieldValue<DateTimeOffset>(9)));
            }
        }

        // No rows, no hole: the snapshot only matters when something after a gap is visible.
        var snapshot = snapshotText is null ? SnapshotState.Empty : SnapshotState.Parse(snapshotText);
        var holeBefore = _hole;
        var result = TakeContiguous(after, rows, snapshot, rows.Count == limit);
        if (_hole is not null && !ReferenceEquals(_hole, holeBefore) && _hole.Blockers.Count > 0)
        {
            _hole = await ExcludeOtherDatabasesAsync(connection, _hole, cancellationToken).ConfigureAwait(false);
            result = new ChangeLogBatch(result.Events, _hole, result.LimitReached);
        }

        return result;
    }

    /// <summary>
    /// Snapshots list the running transactions of the whole cluster, but a transaction connected to
    /// another database cannot have written to this one's log. Dropping those from the blockers keeps
    /// busy neighbours from delaying hole resolution. Anything not positively identified as foreign
    /// stays a blocker, so missing privileges only make the reader wait longer, never skip.
    /// </summary>
    private static async Task<PositionHole> ExcludeOtherDatabasesAsync(NpgsqlConnection connection, PositionHole hole, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            """
            SELECT backend_xid::text FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL AND datid IS NOT NULL
               AND datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
            UNION ALL
            SELECT transaction::text FROM pg_prepared_xacts WHERE database <> current_database()
            """, connection);
        var foreign = new HashSet<ulong>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                // backend_xid is a 32-bit xid; compare on the low 32 bits of the xid8 blockers.
                foreign.Add(ulong.Parse(reader.GetString(0), NumberStyles.None, CultureInfo.InvariantCulture));
            }
        }

        var remaining = hole.Blockers.Where(xid => !foreign.Contains(xid & 0xFFFF_FFFF)).ToArray();
        return remaining.Length == hole.Blockers.Count ? hole : hole with { Blockers = remaining };
    }

    private ChangeLogBatch TakeContiguous(LogPosition after, List<CapturedEvent> rows, SnapshotState snapshot, bool limitReached)
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

            // Positions current+1 .. position-1 are missing while a later one is visible.
            var from = current + 1;
            var to = position - 1;
            if (_hole is not null && _hole.Covers(from, to) && _hole.IsResolvedIn(snapshot))
            {
                PgEventsLog.HoleSkipped(_logger, from, to);
                _hole = null;
                current = position;
                continue;
            }

            // A new observation, or one the old observation does not fully cover: its blockers are
            // what runs now. Keeping the older hole's blockers would be just as correct but slower.
            if (_hole is null || !_hole.Covers(from, to))
            {
                _hole = new PositionHole(from, to, snapshot.InProgress.ToArray());
                PgEventsLog.HoleObserved(_logger, from, to, _hole.Blockers.Count);
            }

            return new ChangeLogBatch(rows.GetRange(0, i), _hole, limitReached: false);
        }

        return new ChangeLogBatch(rows, waitingOn: null, limitReached);
    }

    private static ulong ParseXid(string text) => ulong.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture);

    internal static ChangeKind ParseKind(string operation) => operation switch
    {
        "INSERT" => ChangeKind.Insert,
        "UPDATE" => ChangeKind.Update,
        "DELETE" => ChangeKind.Delete,
        "TRUNCATE" => ChangeKind.Truncate,
        _ => throw new PgEventsException($"The event log holds an unknown operation '{operation}'."),
    };
}
