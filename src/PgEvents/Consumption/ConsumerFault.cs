namespace PgEvents;

/// <summary>
/// An error that keeps the consumer from running and that reconnecting alone does not cure: a missing
/// privilege, a missing table or database, a failed login, a connection that is not a session of its
/// own. The consumer keeps retrying with backoff, and the fault clears once it runs again.
/// </summary>
public sealed class ConsumerFault
{
    internal ConsumerFault(string? sqlState, string message, DateTimeOffset since, int attempts)
    {
        SqlState = sqlState;
        Message = message;
        Since = since;
        Attempts = attempts;
    }

    /// <summary>The PostgreSQL error code (SQLSTATE), or null when the error did not come from the server.</summary>
    public string? SqlState { get; }

    /// <summary>What failed, as the server or PgEvents reported it.</summary>
    public string Message { get; }

    /// <summary>When the consumer first failed this way since it last ran.</summary>
    public DateTimeOffset Since { get; }

    /// <summary>Attempts in a row that failed with such an error.</summary>
    public int Attempts { get; }

    /// <summary>The code (when there is one) and the message, for logs and health reports.</summary>
    /// <returns>For example <c>42501: permission denied for table transactions</c>.</returns>
    public override string ToString() => SqlState is null ? Message : $"{SqlState}: {Message}";
}
