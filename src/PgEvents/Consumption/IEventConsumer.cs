namespace PgEvents;

/// <summary>
/// A named consumer of the commit-ordered log: installs the schema and the capture triggers of its
/// mapped tables, then delivers every committed change to its handlers, at least once, in order.
/// </summary>
public interface IEventConsumer
{
    /// <summary>The consumer name; its cursor is stored under it.</summary>
    string Name { get; }

    /// <summary>Installs or upgrades the schema and tracks every mapped table. Idempotent.</summary>
    /// <param name="cancellationToken">Cancels the installation.</param>
    /// <returns>A task that completes when the schema and triggers are in place.</returns>
    Task InstallAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Consumes until <paramref name="cancellationToken"/> is cancelled, reconnecting after
    /// connection failures. Returns normally when cancelled; the event in flight, if any, is
    /// delivered again by the next run.
    /// </summary>
    /// <param name="cancellationToken">Stops consuming.</param>
    /// <returns>A task that completes when the consumer has stopped.</returns>
    /// <exception cref="InvalidOperationException">This instance is already running.</exception>
    Task RunAsync(CancellationToken cancellationToken);

    /// <summary>Reads where the consumer stands: head, cursor, lag, and the event it is blocked on.</summary>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>A snapshot of the consumer's state.</returns>
    Task<ConsumerStatus> GetStatusAsync(CancellationToken cancellationToken = default);
}
