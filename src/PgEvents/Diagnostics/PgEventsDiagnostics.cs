using System.Diagnostics;

namespace PgEvents;

/// <summary>
/// The library's telemetry names. The <see cref="ActivitySource"/> and the meter (created through
/// the host's <c>IMeterFactory</c> by <see cref="PgEventsMetrics"/>) are both named <c>PgEvents</c>:
/// pass that name to OpenTelemetry's <c>AddSource</c> and <c>AddMeter</c>.
/// </summary>
internal static class PgEventsDiagnostics
{
    public const string Name = "PgEvents";

    public static readonly string? Version = typeof(PgEventsDiagnostics).Assembly.GetName().Version?.ToString();

    public static readonly ActivitySource ActivitySource = new(Name, Version);
}
