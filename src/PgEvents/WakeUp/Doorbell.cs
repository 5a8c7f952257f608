using Npgsql;

namespace PgEvents;

/// <summary>
/// Lets writers know whether a NOTIFY can matter. A consumer with nothing to read holds the
/// doorbell (a shared session advisory lock) while it sleeps, and only then do committing writers
/// notify; a busy consumer holds nothing, so writers skip the NOTIFY and its cluster-wide commit
/// lock. Before sleeping, the consumer waits for the transactions in their commit phase and reads
/// once more: a writer that checked the doorbell before it was held is one of them (see
/// <c>sql/007_doorbell.sql</c>), so its commit is read, not missed.
/// </summary>
/// <remarks>One instance per working connection; the lock lives and dies with that session.</remarks>
internal sealed class Doorbell(SchemaSettings settings, TimeProvider time)
{
    private readonly CommitPhase _commitPhase = new(settings, time);

    /// <summary>Whether this consumer holds the doorbell, i.e. writers notify it.</summary>
    public bool IsHeld { get; private set; }

    /// <summary>
    /// Takes the doorbell and waits (at most <paramref name="timeout"/>) for the transactions that
    /// were already in their commit phase; the caller must read the log again before it sleeps.
    /// </summary>
    public async Task HoldAsync(NpgsqlConnection connection, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!IsHeld)
        {
            await ExecuteAsync(connection, "SELECT pg_advisory_lock_shared(@class, @key)", cancellationToken).ConfigureAwait(false);
            IsHeld = true;
        }

        var holders = await _commitPhase.HoldersAsync(connection, cancellationToken).ConfigureAwait(false);
        await _commitPhase.WaitAsync(connection, holders, timeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Releases the doorbell: there is work, so writers need not notify.</summary>
    public async Task ReleaseAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (IsHeld)
        {
            await ExecuteAsync(connection, "SELECT pg_advisory_unlock_shared(@class, @key)", cancellationToken).ConfigureAwait(false);
            IsHeld = false;
        }
    }

    private async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("class", SchemaSettings.AdvisoryLockClass);
        command.Parameters.AddWithValue("key", settings.DoorbellKey);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
