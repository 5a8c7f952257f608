using Npgsql;

namespace PgEvents;

/// <summary>
/// The one-active-instance rule: a session advisory lock per consumer name. The lock lives exactly as
/// long as the connection, so an instance that dies or loses its connection releases it, and an
/// instance that lost it can no longer read or save with that connection.
/// </summary>
internal sealed class ConsumerLease(SchemaSettings settings, PgEventsOptions options, ConsumerState state, TimeProvider time, Microsoft.Extensions.Logging.ILogger logger)
{
    private readonly int _key = SchemaSettings.DeriveKey("lease", settings.SchemaName + "\0" + options.ConsumerName);

    /// <summary>Waits, as a standby, until <paramref name="connection"/> holds the lease.</summary>
    public async Task AcquireAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(@class, @key)", connection);
        command.Parameters.AddWithValue("class", SchemaSettings.AdvisoryLockClass);
        command.Parameters.AddWithValue("key", _key);
        var announced = false;
        while (!(bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
        {
            state.BecomeStandby();
            if (!announced)
            {
                PgEventsLog.Standby(logger, state.Name);
                announced = true;
            }

            await Task.Delay(options.StandbyRetryInterval, time, cancellationToken).ConfigureAwait(false);
        }

        if (announced)
        {
            PgEventsLog.TookOver(logger, state.Name);
        }
    }
}
