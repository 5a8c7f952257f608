using Microsoft.Extensions.Logging;

namespace PgEvents;

/// <summary>
/// Keeps a consumer running across failures: opens a session connection, checks it is a session of
/// its own, runs the delivery loop on it, and after a failure reports it (a lost connection, or a
/// fault that needs a fix), waits with jittered exponential backoff and starts over.
/// </summary>
internal sealed class ReconnectingRunner(
    PgEventsOptions options,
    SessionConnections sessions,
    SessionCheck sessionCheck,
    DeliveryLoop loop,
    ConsumerState state,
    PgEventsMetrics metrics,
    TimeProvider time,
    ILogger logger)
{
    private static readonly TimeSpan MaxReconnectDelay = TimeSpan.FromSeconds(30);

    // Up to a fifth off each delay: instances that lost the same server do not all return at once.
    private const double ReconnectJitter = 0.2;

    private readonly KeyValuePair<string, object?> _consumerTag = new("pgevents.consumer", options.ConsumerName);

    /// <summary>Runs until <paramref name="cancellationToken"/> is cancelled; only a bug ends it earlier.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = new Backoff(options.ReconnectDelay, 2, MaxReconnectDelay, ReconnectJitter);
        var reconnecting = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            state.StartConnection();
            if (await RunSessionAsync(reconnecting, cancellationToken).ConfigureAwait(false) is not { } failure)
            {
                return;
            }

            var (error, transient) = failure;
            if (state.RanOnThisConnection)
            {
                // It ran before this failure: the backoff starts over.
                backoff.Reset();
            }

            var delay = backoff.Next();

            // The fault is recorded before the roles are cleared, so a status read in between
            // never shows a consumer that merely stopped.
            var fault = transient ? null : state.RecordFault(error);
            state.Stop();
            if (fault is null)
            {
                PgEventsLog.ConnectionLost(logger, error, state.Name, delay);
            }
            else
            {
                PgEventsLog.NonTransientFailure(logger, error, state.Name, fault.SqlState ?? "none", fault.Message, delay);
            }

            metrics.Reconnects.Add(1, _consumerTag);
            try
            {
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            reconnecting = true;
        }
    }

    /// <summary>
    /// One working session: opens an unpooled connection, checks that it is a session of its own, and
    /// consumes on it until it fails. Returns the failure and whether it is transient (a lost or
    /// broken connection, an overloaded or restarting server) or needs a fix (privileges, schema,
    /// connection settings); null when stopped. The connection, and with it the backend holding the
    /// lease, is closed before the failure is returned, so nothing waits or reports while the lease
    /// is still held.
    /// </summary>
    private async Task<(Exception Error, bool Transient)?> RunSessionAsync(bool reconnecting, CancellationToken cancellationToken)
    {
        SessionConnection? session = null;
        try
        {
            session = await sessions.OpenAsync(cancellationToken).ConfigureAwait(false);
            await sessionCheck.VerifyAsync(session.Connection, cancellationToken).ConfigureAwait(false);
            await loop.RunAsync(session.Connection, reconnecting, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && (e is OperationCanceledException || FailureClassifier.IsRetryable(e)))
        {
            // Stopping: whatever the connection did meanwhile is no fault.
            return null;
        }
        catch (Exception e) when (FailureClassifier.IsRetryable(e))
        {
            // A broken connection explains any error raised through it, whatever its type.
            return (e, FailureClassifier.IsTransient(e) || (session is not null && FailureClassifier.IsBroken(session.Connection)));
        }
        finally
        {
            if (session is not null)
            {
                await session.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
