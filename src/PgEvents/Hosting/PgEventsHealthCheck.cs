using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace PgEvents;

/// <summary>
/// Reports the consumer's state: Healthy when active (or a standby ready to take over) and keeping
/// up; Degraded when blocked on a failing event, lagging more than
/// <see cref="PgEventsOptions.HealthCheckMaxLag"/>, or running but not connected (starting, or waiting to reconnect); Unhealthy when not running, when the database
/// cannot be reached, or while an error that reconnecting does not cure keeps it from running
/// (<see cref="ConsumerStatus.Fault"/>: a missing privilege or table, a connection that is not a
/// session of its own), naming that error. Register it with
/// <c>services.AddHealthChecks().AddPgEvents()</c>.
/// </summary>
internal sealed class PgEventsHealthCheck : IHealthCheck
{
    private readonly IEventConsumer _consumer;
    private readonly TimeSpan _maxLag;

    /// <summary>Creates the health check of one consumer.</summary>
    /// <param name="consumer">The consumer to report on.</param>
    /// <param name="maxLag">The consumer's <see cref="PgEventsOptions.HealthCheckMaxLag"/>.</param>
    public PgEventsHealthCheck(IEventConsumer consumer, TimeSpan maxLag)
    {
        ArgumentNullException.ThrowIfNull(consumer);
        _consumer = consumer;
        _maxLag = maxLag;
    }

    /// <inheritdoc />
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ConsumerStatus status;
        try
        {
            status = await _consumer.GetStatusAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or TimeoutException)
        {
            // The fault that stops the consumer (say, a revoked privilege) often stops the status query
            // too; it is the better explanation.
            return _consumer is PgEventConsumer { Fault: { } known }
                ? HealthCheckResult.Unhealthy(FaultDescription(_consumer.Name, known), e, FaultData(_consumer.Name, known))
                : HealthCheckResult.Unhealthy($"PgEvents consumer '{_consumer.Name}' cannot reach its database: {e.Message}", e);
        }

        // Read once: the role reported and the result must agree while the consumer connects.
        var connecting = !status.IsActive && !status.IsStandby && Connecting;
        var data = new Dictionary<string, object>
        {
            ["consumer"] = status.ConsumerName,
            ["role"] = status.IsActive ? "active" : status.IsStandby ? "standby" : connecting ? "connecting" : "stopped",
            ["head_position"] = status.HeadPosition,
            ["cursor_position"] = status.CursorPosition,
            ["lag_events"] = status.LagEvents,
            ["lag_seconds"] = status.LagTime.TotalSeconds,
        };
        if (status.Fault is { } fault)
        {
            foreach (var (key, value) in FaultData(status.ConsumerName, fault))
            {
                data[key] = value;
            }

            return HealthCheckResult.Unhealthy(FaultDescription(status.ConsumerName, fault), data: data);
        }

        if (status.Blocked is { } blocked)
        {
            data["blocked_position"] = blocked.Position;
            data["blocked_table"] = blocked.Table.ToString();
            data["blocked_attempts"] = blocked.Attempts;
            data["blocked_error"] = blocked.LastError;
        }

        if (connecting)
        {
            // Just started, or reconnecting after a lost connection: neither dead nor delivering yet.
            return HealthCheckResult.Degraded($"PgEvents consumer '{status.ConsumerName}' is running and connecting.", data: data);
        }

        if (!status.IsActive && !status.IsStandby)
        {
            return HealthCheckResult.Unhealthy($"PgEvents consumer '{status.ConsumerName}' is not running.", data: data);
        }

        if (status.IsStandby)
        {
            return HealthCheckResult.Healthy($"PgEvents consumer '{status.ConsumerName}' is on standby.", data);
        }

        if (status.Blocked is { } stuck)
        {
            return HealthCheckResult.Degraded(
                $"PgEvents consumer '{status.ConsumerName}' is blocked on {stuck.Table} at position {stuck.Position} after {stuck.Attempts} attempts: {stuck.LastError}",
                data: data);
        }

        return status.LagTime > _maxLag
            ? HealthCheckResult.Degraded($"PgEvents consumer '{status.ConsumerName}' lags {status.LagTime} ({status.LagEvents} events).", data: data)
            : HealthCheckResult.Healthy($"PgEvents consumer '{status.ConsumerName}' is active.", data);
    }

    private bool Connecting => _consumer is PgEventConsumer { IsRunning: true };

    private static string FaultDescription(string consumer, ConsumerFault fault) =>
        $"PgEvents consumer '{consumer}' cannot run: {fault} (since {fault.Since:O}, {fault.Attempts} attempts); " +
        "it keeps retrying, and runs again once the cause is fixed.";

    private static Dictionary<string, object> FaultData(string consumer, ConsumerFault fault)
    {
        var data = new Dictionary<string, object>
        {
            ["consumer"] = consumer,
            ["fault_error"] = fault.Message,
            ["fault_since"] = fault.Since,
            ["fault_attempts"] = fault.Attempts,
        };
        if (fault.SqlState is { } sqlState)
        {
            data["fault_sqlstate"] = sqlState;
        }

        return data;
    }
}
