namespace PgEvents;

/// <summary>What a consumer does with an event whose handlers keep failing.</summary>
public enum FailurePolicy
{
    /// <summary>Retry it forever with backoff; nothing later is delivered until it succeeds. The default.</summary>
    Block,

    /// <summary>
    /// After <see cref="PgEventsRetryOptions.MaxAttempts"/> failed attempts, move it to the dead-letter
    /// table with its error and continue with the next event. Dead letters can be listed and replayed.
    /// </summary>
    DeadLetter,
}
