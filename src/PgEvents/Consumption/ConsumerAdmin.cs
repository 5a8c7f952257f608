using System.Data;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Operations on a consumer's saved state that need no running delivery loop: listing and replaying
/// dead letters, and moving the cursor. A running instance (here or in another process) notices a
/// moved cursor through the cursor's generation and a notification.
/// </summary>
internal sealed class ConsumerAdmin(
    NpgsqlDataSource dataSource,
    SchemaSettings settings,
    PgEventsOptions options,
    CursorStore cursors,
    DeadLetterStore deadLetters,
    EventDispatcher dispatcher,
    ILogger logger)
{
    private readonly string _positionSinceSql =
        $"""
        SELECT coalesce((SELECT min(position) FROM {settings.Qualify("transactions")} WHERE committed_at >= @since) - 1,
                        (SELECT max(position) FROM {settings.Qualify("transactions")}), 0)
        """;

    // The furthest position known to be committed, as the schema's subscribe() takes it: the log's,
    // or the last one retention deleted where it emptied the log.
    private readonly string _headSql =
        $"""
        SELECT greatest((SELECT coalesce(max(position), 0) FROM {settings.Qualify("transactions")}),
                        (SELECT purged_through FROM {settings.Qualify("settings")}))
        """;

    private string Name => options.ConsumerName;

    public async Task<IReadOnlyList<DeadLetter>> GetDeadLettersAsync(CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var letters = await deadLetters.ListAsync(connection, id: null, cancellationToken).ConfigureAwait(false);
            return letters.Select(l => l.Letter).ToArray();
        }
    }

    public async Task ReplayDeadLetterAsync(long id, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            var found = await deadLetters.ListAsync(connection, id, cancellationToken).ConfigureAwait(false);
            if (found.Count == 0)
            {
                throw new PgEventsException($"Consumer '{Name}' has no dead letter with id {id}.");
            }

            var captured = found[0].Event;
            if (!dispatcher.HasHandlers(captured))
            {
                throw new PgEventsException($"Dead letter {id} belongs to table {captured.TableName}, which has no handler in consumer '{Name}'.");
            }

            try
            {
                // A transactional handler's writes and the removal of the dead letter commit together.
                await dispatcher.RunHandlersAsync(
                    connection, DeliveryUnit.Of(captured), (_, token) => deadLetters.DeleteAsync(connection, id, token), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException && connection.State == ConnectionState.Open)
            {
                await deadLetters.RecordFailedReplayAsync(connection, id, FailureClassifier.Describe(e), CancellationToken.None).ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>Delivery restarts at <paramref name="position"/> (the first position delivered again).</summary>
    public async Task ResetCursorAsync(long position, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(position, 1);
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            // A cursor past the head would pass over the transactions that commit until the head gets
            // there, while the lag, measured from the cursor, reads zero.
            await using (var head = new NpgsqlCommand(_headSql, connection))
            {
                var last = (long)(await head.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                if (position > last + 1)
                {
                    throw new ArgumentOutOfRangeException(
                        nameof(position), position,
                        $"Cannot reset PgEvents consumer '{Name}' to position {position}: the last committed position is {last}, so delivery can restart at {last + 1} at the latest (to skip everything committed so far).");
                }
            }

            await ResetToAsync(connection, new LogPosition(position - 1, long.MaxValue), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Delivery restarts with the first transaction committed at or after <paramref name="committedSince"/>.</summary>
    public async Task ResetCursorAsync(DateTimeOffset committedSince, CancellationToken cancellationToken)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await using var command = new NpgsqlCommand(_positionSinceSql, connection);
            command.Parameters.AddWithValue("since", committedSince.ToUniversalTime());
            var position = (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            await ResetToAsync(connection, new LogPosition(position, long.MaxValue), cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ResetToAsync(NpgsqlConnection connection, LogPosition position, CancellationToken cancellationToken)
    {
        await cursors.ResetAsync(connection, position, cancellationToken).ConfigureAwait(false);

        // Wake a running instance (here or in another process) so it picks up the reset at once.
        await using var notify = new NpgsqlCommand("SELECT pg_notify(@channel, '')", connection);
        notify.Parameters.AddWithValue("channel", options.NotificationChannel);
        await notify.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        PgEventsLog.CursorResetRequested(logger, Name, position);
    }
}
