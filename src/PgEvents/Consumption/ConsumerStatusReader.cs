using System.Data;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Answers "where is this consumer and how far behind": its role and fault from this instance, its
/// cursor from memory while active here (else from its saved row), its lag from the log.
/// </summary>
internal sealed class ConsumerStatusReader(NpgsqlDataSource dataSource, SchemaSettings settings, ConsumerState state, DeliveryProgress progress, SnapshotStore snapshotStore)
{
    // Lag counts this consumer's events only (SubscriptionFilter); its time is the age of the oldest
    // commit the cursor has not passed, which a consumer passes at once when none of it is its own.
    private readonly string _lagSql =
        $"""
        WITH {SubscriptionFilter.CommonTables(settings)}
        SELECT (SELECT coalesce(max(position), 0) FROM {settings.Qualify("transactions")}),
               (SELECT count(*) FROM {settings.Qualify("transactions")} t JOIN {settings.Qualify("events")} e ON e.xid = t.xid
                 WHERE t.position > @position AND {SubscriptionFilter.Condition("e", "t")})
               + (SELECT count(*) FROM {settings.Qualify("transactions")} t JOIN {settings.Qualify("events")} e ON e.xid = t.xid
                   WHERE t.position = @position AND e.event_id > @event_id AND {SubscriptionFilter.Condition("e", "t")}),
               (SELECT extract(epoch FROM now() - committed_at)::float8 FROM {settings.Qualify("transactions")}
                 WHERE position > @position ORDER BY position LIMIT 1)
        """;

    public Task<ConsumerStatus> ReadAsync(CancellationToken cancellationToken) => ReadAsync(withSnapshots: true, cancellationToken);

    /// <summary>What the lag gauges record: the lag only, every sample interval, so without the snapshots.</summary>
    public async Task<LagSample> MeasureLagAsync(CancellationToken cancellationToken)
    {
        var status = await ReadAsync(withSnapshots: false, cancellationToken).ConfigureAwait(false);
        return new LagSample(status.LagEvents, status.LagTime.TotalSeconds);
    }

    private async Task<ConsumerStatus> ReadAsync(bool withSnapshots, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // Under a database default of SERIALIZABLE these reads beside busy writers failed now and
            // then with 40001, and a health check or lag sample with them; READ COMMITTED, as the
            // consumer's own sessions read (WorkingSession), cannot. (BEGIN goes out with the first read.)
            var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);
            await using var _ = transaction.ConfigureAwait(false);
            var active = state.IsActive;
            var cursor = active ? progress.Delivered : await progress.Store.PeekAsync(connection, cancellationToken).ConfigureAwait(false);
            await using var command = new NpgsqlCommand(_lagSql, connection);
            command.Parameters.AddWithValue("position", cursor.Position);
            command.Parameters.AddWithValue("event_id", cursor.EventId);
            command.Parameters.AddWithValue("consumer", state.Name);
            long head, lagEvents;
            TimeSpan lagTime;
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                head = reader.GetInt64(0);
                lagEvents = reader.GetInt64(1);
                lagTime = reader.IsDBNull(2) ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Max(0, reader.GetDouble(2)));
            }

            var snapshots = withSnapshots ? await snapshotStore.ListAsync(connection, cursor.Position, cancellationToken).ConfigureAwait(false) : [];
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return new ConsumerStatus(
                state.Name, active, state.IsStandby, head, cursor.Position, cursor.EventId, lagEvents, lagTime, state.Blocked, state.Fault, snapshots);
        }
    }
}
