using Microsoft.Extensions.Options;
using Npgsql;

namespace PgEvents;

/// <summary>Checks options at start, with messages that say what to change.</summary>
internal sealed class PgEventsOptionsValidator(PgEventsRegistrations? registrations = null) : IValidateOptions<PgEventsOptions>
{
    public ValidateOptionsResult Validate(string? name, PgEventsOptions options)
    {
        var failures = Check(name, options);
        if (failures.Count == 0)
        {
            return ValidateOptionsResult.Success;
        }

        // With several consumers in a host the operator must learn which one to fix.
        return ValidateOptionsResult.Fail(string.IsNullOrEmpty(name)
            ? failures
            : failures.Select(f => $"PgEvents consumer registered as '{name}': {f}"));
    }

    private List<string> Check(string? name, PgEventsOptions options)
    {
        var failures = new List<string>();
        if (registrations?.UsesHostDataSource(name ?? Options.DefaultName) == true)
        {
            // Connections come from the host's data source (PgEventsBuilder.UseDataSource).
            if (options.ConfigureDataSource is not null)
            {
                failures.Add(
                    "PgEventsOptions.ConfigureDataSource does not apply to a consumer whose data source the host supplies (PgEventsBuilder.UseDataSource): configure that data source instead.");
            }
        }
        else if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            failures.Add("PgEventsOptions.ConnectionString is required: set it to the database whose tables are captured, or give the consumer a data source (PgEventsBuilder.UseDataSource).");
        }
        else
        {
            try
            {
                _ = new NpgsqlConnectionStringBuilder(options.ConnectionString);
            }
            catch (ArgumentException e)
            {
                failures.Add($"PgEventsOptions.ConnectionString is not a valid Npgsql connection string: {e.Message}");
            }
        }

        CheckIdentifier(failures, nameof(options.SchemaName), options.SchemaName, schema: true);
        CheckIdentifier(failures, nameof(options.NotificationChannel), options.NotificationChannel);
        if (string.IsNullOrWhiteSpace(options.ConsumerName))
        {
            failures.Add("PgEventsOptions.ConsumerName cannot be empty: name the consumer so its cursor can be stored.");
        }

        CheckTimer(failures, nameof(options.PollInterval), options.PollInterval);
        CheckTimer(failures, nameof(options.LagSampleInterval), options.LagSampleInterval);
        CheckTimer(failures, nameof(options.ReconnectDelay), options.ReconnectDelay);
        CheckRetry(failures, options.Retry);

        if (options.BatchSize is < 1 or > 100_000)
        {
            failures.Add($"PgEventsOptions.BatchSize must be between 1 and 100000; it is {options.BatchSize}.");
        }

        if (options.DeliveryLanes is < 1 or > 64)
        {
            failures.Add($"PgEventsOptions.DeliveryLanes must be between 1 and 64; it is {options.DeliveryLanes}.");
        }

        if (options.MaxBatchBytes < 1024)
        {
            failures.Add($"PgEventsOptions.MaxBatchBytes must be at least 1024; it is {options.MaxBatchBytes}.");
        }

        if (!Enum.IsDefined(options.BatchBoundary))
        {
            failures.Add($"PgEventsOptions.BatchBoundary must be Change or Transaction; it is {(int)options.BatchBoundary}.");
        }

        if (!Enum.IsDefined(options.UnmappedTablePolicy))
        {
            failures.Add($"PgEventsOptions.UnmappedTablePolicy has an unknown value {(int)options.UnmappedTablePolicy}.");
        }

        CheckTimer(failures, nameof(options.StandbyRetryInterval), options.StandbyRetryInterval);
        CheckTimer(failures, nameof(options.KeepAliveInterval), options.KeepAliveInterval);
        CheckPositive(failures, nameof(options.HealthCheckMaxLag), options.HealthCheckMaxLag);
        CheckRetention(failures, options.Retention);

        if (options.SnapshotChunkSize is < 1 or > 100_000)
        {
            failures.Add($"PgEventsOptions.SnapshotChunkSize must be between 1 and 100000; it is {options.SnapshotChunkSize}.");
        }

        if (!Enum.IsDefined(options.FailurePolicy))
        {
            failures.Add($"PgEventsOptions.FailurePolicy has an unknown value {(int)options.FailurePolicy}.");
        }

        if (options.JsonSerializerOptions is null)
        {
            failures.Add("PgEventsOptions.JsonSerializerOptions cannot be null.");
        }

        return failures;
    }

    // Failures name the nested options by their path from PgEventsOptions, as configuration does
    // (Retry:MaxAttempts), so a message points at the setting to change.
    private static void CheckRetry(List<string> failures, PgEventsRetryOptions retry)
    {
        CheckTimer(failures, "Retry.InitialDelay", retry.InitialDelay);
        CheckTimer(failures, "Retry.MaxDelay", retry.MaxDelay);
        if (retry.MaxDelay < retry.InitialDelay)
        {
            failures.Add($"PgEventsOptions.Retry.MaxDelay ({retry.MaxDelay}) must not be shorter than Retry.InitialDelay ({retry.InitialDelay}).");
        }

        if (retry.BackoffMultiplier < 1 || double.IsNaN(retry.BackoffMultiplier))
        {
            failures.Add($"PgEventsOptions.Retry.BackoffMultiplier must be at least 1; it is {retry.BackoffMultiplier}.");
        }

        if (retry.MaxAttempts < 1)
        {
            failures.Add($"PgEventsOptions.Retry.MaxAttempts must be at least 1; it is {retry.MaxAttempts}.");
        }
    }

    private static void CheckRetention(List<string> failures, PgEventsRetentionOptions retention)
    {
        CheckTimer(failures, "Retention.Interval", retention.Interval);
        if (retention.Age is { } age && age < TimeSpan.Zero)
        {
            failures.Add($"PgEventsOptions.Retention.Age cannot be negative; it is {age}. Use null to keep every event.");
        }

        if (retention.BatchSize < 1)
        {
            failures.Add($"PgEventsOptions.Retention.BatchSize must be at least 1; it is {retention.BatchSize}.");
        }
    }

    private static void CheckIdentifier(List<string> failures, string option, string? value, bool schema = false)
    {
        try
        {
            if (schema)
            {
                SqlIdentifier.ValidateSchemaName(value, option);
            }
            else
            {
                SqlIdentifier.Validate(value, option);
            }
        }
        catch (ArgumentException e)
        {
            failures.Add($"PgEventsOptions.{option} is invalid: {e.Message}");
        }
    }

    private static void CheckPositive(List<string> failures, string option, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            failures.Add($"PgEventsOptions.{option} must be positive; it is {value}.");
        }
    }

    // Timers cannot wait longer than this (about 49.7 days).
    private static readonly TimeSpan LongestTimer = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <summary>An interval that ends up in a timer: positive, and no longer than a timer can wait.</summary>
    private static void CheckTimer(List<string> failures, string option, TimeSpan value)
    {
        CheckPositive(failures, option, value);
        if (value > LongestTimer)
        {
            failures.Add($"PgEventsOptions.{option} must be at most {LongestTimer} (the longest a timer can wait); it is {value}.");
        }
    }
}
