using Npgsql;

namespace PgEvents;

/// <summary>
/// Refuses a working connection that is not a server session of its own. Behind a pooler in
/// transaction or statement mode (PgBouncer's <c>pool_mode = transaction</c>), a client connection
/// holds a server connection only for the length of a transaction; between transactions the pooler
/// hands that server connection to other clients. The consumer's lease (a session advisory lock) and
/// its LISTEN would then stay on a backend other clients use: the lease would never be released, and
/// notifications would go to whoever holds that backend. Nothing in the protocol says a pooler is in
/// between, so the check provokes its effect instead.
/// </summary>
/// <remarks>
/// The working connection notes its backend pid and marks its session with a random token; a second
/// connection then starts a transaction and reads its own pid and the mark; the working connection
/// reads its pid and mark again, while that transaction is open and after it ended. On a real session
/// the second connection has another backend and the working connection keeps its pid and mark. A
/// pooler shows itself either way: with PgBouncer's default most-recently-used server selection the
/// second connection gets the working connection's freed backend (pid and mark seen there); with
/// <c>server_round_robin</c> the working connection moves to another backend on its next statements.
/// Both were observed with PgBouncer 1.18; in statement mode PgBouncer refuses the transaction itself.
/// </remarks>
internal sealed class SessionCheck(NpgsqlDataSource probes, string consumerName)
{
    internal const string Mark = "pgevents.session_check";

    // Two rounds: round-robin selection can hand the working connection its own backend back once by
    // chance; it cannot keep doing so while a second client takes and frees backends in between.
    private const int Rounds = 2;

    public async Task VerifyAsync(NpgsqlConnection working, CancellationToken cancellationToken)
    {
        var token = Guid.NewGuid().ToString("N");
        int pid;
        await using (var mark = new NpgsqlCommand("SELECT pg_backend_pid(), set_config(@name, @token, false)", working))
        {
            mark.Parameters.AddWithValue("name", Mark);
            mark.Parameters.AddWithValue("token", token);
            await using var reader = await mark.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            pid = reader.GetInt32(0);
        }

        var probe = await probes.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (probe.ConfigureAwait(false))
        {
            for (var round = 0; round < Rounds; round++)
            {
                var transaction = await probe.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (transaction.ConfigureAwait(false))
                {
                    var (probePid, probeToken) = await ReadSessionAsync(probe, transaction, cancellationToken).ConfigureAwait(false);
                    if (probePid == pid || probeToken == token)
                    {
                        throw Refuse($"a second connection was given the working connection's backend (pid {pid})");
                    }

                    await ExpectSameSessionAsync(working, pid, token, "while a second connection held a transaction", cancellationToken).ConfigureAwait(false);
                    await transaction.RollbackAsync(cancellationToken).ConfigureAwait(false);
                }

                await ExpectSameSessionAsync(working, pid, token, "after a second connection's transaction ended", cancellationToken).ConfigureAwait(false);
                await ExpectSameSessionAsync(working, pid, token, "on consecutive statements", cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private async Task ExpectSameSessionAsync(NpgsqlConnection working, int pid, string token, string when, CancellationToken cancellationToken)
    {
        var (now, seen) = await ReadSessionAsync(working, transaction: null, cancellationToken).ConfigureAwait(false);
        if (now != pid || seen != token)
        {
            throw Refuse($"the working connection moved from backend pid {pid} to pid {now} {when}");
        }
    }

    private async Task<(int Pid, string? Token)> ReadSessionAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken)
    {
        await using var read = new NpgsqlCommand("SELECT pg_backend_pid(), current_setting(@name, true)", connection, transaction);
        read.Parameters.AddWithValue("name", Mark);
        try
        {
            await using var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            return (reader.GetInt32(0), reader.IsDBNull(1) ? null : reader.GetString(1));
        }
        catch (PostgresException e) when (transaction is not null && e.SqlState == PostgresErrorCodes.ProtocolViolation
                                          && e.MessageText.Contains("statement pooling", StringComparison.OrdinalIgnoreCase))
        {
            // PgBouncer in statement mode refuses every transaction block (and drops the connection).
            throw Refuse($"the server refused a transaction: {e.MessageText}", e);
        }
    }

    private PgEventsException Refuse(string evidence, Exception? inner = null)
    {
        var message =
            $"PgEvents consumer '{consumerName}' needs a database session of its own, but its connection is shared with other " +
            $"clients: {evidence}. A pooler in transaction or statement mode (PgBouncer pool_mode = transaction or statement) " +
            "does this, and would leave the consumer's lease (a session advisory lock) and its LISTEN on a server connection " +
            "other clients then use. Connect the consumer directly to PostgreSQL, or through a PgBouncer pool in session mode " +
            "(pool_mode = session). Applications that only write tracked tables may stay behind transaction pooling: capture " +
            "runs inside the server.";
        return inner is null ? new PgEventsException(message) : new PgEventsException(message, inner);
    }
}
