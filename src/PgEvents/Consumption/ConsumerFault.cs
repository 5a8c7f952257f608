namespace PgEvents;

/// <summary>
/// An error that keeps the consumer from running and that reconnecting alone does not cure: a missing
/// privilege, a missing table or database, a failed login, a connection that is not a session of its
/// own. The consumer keeps retrying with backoff, and the fault clears once it runs again.
/// </summary>
/// <param name="SqlState">The PostgreSQL error code (SQLSTATE), or null when the error did not come from the server.</param>
/// <param name="Message">What failed, as the server or PgEvents reported it.</param>
/// <param name="Since">When the consumer first failed this way since it last ran.</param>
/// <param name="Attempts">Attempts in a row that failed with such an error.</param>
public sealed record ConsumerFault(string? SqlState, string Message, DateTimeOffset Since, int Attempts)
{
    /// <summary>The code (when there is one) and the message, for logs and health reports.</summary>
    /// <returns>For example <c>42501: permission denied for table transactions</c>.</returns>
    public override string ToString() => SqlState is null ? Message : $"{SqlState}: {Message}";
}
