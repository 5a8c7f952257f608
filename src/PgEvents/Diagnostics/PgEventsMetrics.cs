using System.Diagnostics.Metrics;

namespace PgEvents;

/// <summary>
/// The <c>PgEvents</c> meter and its instruments, one set per service provider. The meter comes from
/// the host's <see cref="IMeterFactory"/> when there is one, so metrics of two hosts in one process
/// (tests, several apps) stay apart and are disposed with their container.
/// </summary>
internal sealed class PgEventsMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly List<(string Consumer, Func<LagSample?> Read)> _lagSources = [];

    public PgEventsMetrics(IMeterFactory? meterFactory = null)
    {
        var meterOptions = new MeterOptions(PgEventsDiagnostics.Name) { Version = PgEventsDiagnostics.Version };
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(meterOptions) ?? new Meter(meterOptions);

        EventsDelivered = _meter.CreateCounter<long>("pgevents.events.delivered", "{event}", "Events whose handlers all succeeded.");
        HandlerDuration = _meter.CreateHistogram<double>("pgevents.handler.duration", "s", "Time to run every handler of one event, successful or not.");
        BatchSize = _meter.CreateHistogram<int>("pgevents.batch.size", "{event}", "Deliverable events returned by one read of the log.");
        Retries = _meter.CreateCounter<long>("pgevents.retries", "{attempt}", "Failed delivery attempts that will be retried.");
        Reconnects = _meter.CreateCounter<long>("pgevents.reconnects", "{reconnect}", "Times a consumer lost its connections and reconnected.");
        WakeUps = _meter.CreateCounter<long>("pgevents.wakeups", "{wakeup}", "Reads of the log, tagged by what triggered them (notify or poll).");
        SnapshotRows = _meter.CreateCounter<long>("pgevents.snapshot.rows", "{row}", "Rows snapshots read into the log, per consumer and table.");
        DeadLetters = _meter.CreateCounter<long>("pgevents.dead_letters", "{event}", "Events moved to the dead-letter table.");
        _meter.CreateObservableGauge("pgevents.lag.events", () => ObserveLag(l => l.Events), "{event}", "Committed events not yet delivered, per active consumer.");
        _meter.CreateObservableGauge("pgevents.lag.seconds", () => ObserveLag(l => l.Seconds), "s", "Age of the oldest undelivered commit, per active consumer.");
    }

    public Counter<long> EventsDelivered { get; }

    public Histogram<double> HandlerDuration { get; }

    public Histogram<int> BatchSize { get; }

    public Counter<long> Retries { get; }

    public Counter<long> Reconnects { get; }

    public Counter<long> WakeUps { get; }

    public Counter<long> DeadLetters { get; }

    public Counter<long> SnapshotRows { get; }

    /// <summary>Adds a consumer to the lag gauges; <paramref name="read"/> returns null while it is not active.</summary>
    public void ObserveLagOf(string consumer, Func<LagSample?> read)
    {
        lock (_lagSources)
        {
            _lagSources.Add((consumer, read));
        }
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private List<Measurement<T>> ObserveLag<T>(Func<LagSample, T> select)
        where T : struct
    {
        lock (_lagSources)
        {
            var measurements = new List<Measurement<T>>(_lagSources.Count);
            foreach (var (consumer, read) in _lagSources)
            {
                if (read() is { } lag)
                {
                    measurements.Add(new Measurement<T>(select(lag), new KeyValuePair<string, object?>("pgevents.consumer", consumer)));
                }
            }

            return measurements;
        }
    }
}
