using Microsoft.Extensions.Logging;

namespace PgEvents;

/// <summary>One lag measurement: undelivered events and the age of the oldest undelivered commit.</summary>
internal sealed record LagSample(long Events, double Seconds);

/// <summary>
/// Measures a consumer's lag on its own schedule, apart from delivery, so the lag gauges stay current
/// while the consumer works through a backlog or sits blocked on a failing event: the moments an
/// operator looks at them. Counting undelivered events costs in proportion to the lag, so after each
/// measurement the sampler pauses for at least ten times as long as the measurement took; a huge
/// backlog then costs the database at most a tenth of one connection's time.
/// </summary>
internal sealed class LagSampler(
    Func<CancellationToken, Task<LagSample>> measure, TimeSpan interval, TimeProvider time, ILogger logger, string consumer)
{
    private volatile LagSample? _last;

    /// <summary>The latest measurement, or null before the first one.</summary>
    public LagSample? Last => _last;

    /// <summary>Measures until cancelled. Failures are logged and retried at the next interval.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            var started = time.GetTimestamp();
            try
            {
                _last = await measure(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The consumer's own connection handling reports outages, and a failed measurement
                // must never take delivery down with it: log it and try again later.
                PgEventsLog.LagSampleFailed(logger, e, consumer);
            }

            var took = time.GetElapsedTime(started);
            var pause = took * 10 > interval ? took * 10 : interval;
            try
            {
                await Task.Delay(pause, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
