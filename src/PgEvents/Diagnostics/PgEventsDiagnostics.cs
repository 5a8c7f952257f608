using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PgEvents;

/// <summary>
/// The single <see cref="Meter"/> and <see cref="ActivitySource"/> of the library, both named
/// <c>PgEvents</c>: pass that name to OpenTelemetry's <c>AddMeter</c> and <c>AddSource</c>.
/// </summary>
internal static class PgEventsDiagnostics
{
    public const string Name = "PgEvents";

    public static readonly ActivitySource ActivitySource = new(Name, typeof(PgEventsDiagnostics).Assembly.GetName().Version?.ToString());

    public static readonly Meter Meter = new(Name, typeof(PgEventsDiagnostics).Assembly.GetName().Version?.ToString());

    public static readonly Counter<long> EventsDelivered = Meter.CreateCounter<long>(
        "pgevents.events.delivered", "{event}", "Events whose handlers all succeeded.");

    public static readonly Histogram<double> HandlerDuration = Meter.CreateHistogram<double>(
        "pgevents.handler.duration", "s", "Time to run every handler of one event, successful or not.");

    public static readonly Histogram<int> BatchSize = Meter.CreateHistogram<int>(
        "pgevents.batch.size", "{event}", "Deliverable events returned by one read of the log.");

    public static readonly Counter<long> Retries = Meter.CreateCounter<long>(
        "pgevents.retries", "{attempt}", "Failed delivery attempts that will be retried.");

    public static readonly Counter<long> Reconnects = Meter.CreateCounter<long>(
        "pgevents.reconnects", "{reconnect}", "Times a consumer lost its connections and reconnected.");

    public static readonly Counter<long> WakeUps = Meter.CreateCounter<long>(
        "pgevents.wakeups", "{wakeup}", "Reads of the log, tagged by what triggered them (notify or poll).");

    public static readonly Counter<long> DeadLetters = Meter.CreateCounter<long>(
        "pgevents.dead_letters", "{event}", "Events moved to the dead-letter table.");

    public static readonly ObservableGauge<long> LagEvents = Meter.CreateObservableGauge(
        "pgevents.lag.events", () => ConsumerLag.Observe(l => l.Events), "{event}", "Committed events not yet delivered, per active consumer.");

    public static readonly ObservableGauge<double> LagSeconds = Meter.CreateObservableGauge(
        "pgevents.lag.seconds", () => ConsumerLag.Observe(l => l.Seconds), "s", "Age of the oldest undelivered commit, per active consumer.");
}
