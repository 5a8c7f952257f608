namespace PgEvents;

/// <summary>
/// Thrown when PgEvents is misconfigured or meets input it cannot handle safely: an invalid name,
/// a table that does not exist, a schema installed by a newer library version, a row that does not
/// deserialize. The message names what is wrong and, where possible, how to fix it.
/// </summary>
public class PgEventsException : Exception
{
    /// <summary>Creates an exception with no message.</summary>
    public PgEventsException()
    {
    }

    /// <summary>Creates an exception with the given message.</summary>
    /// <param name="message">What is wrong and how to fix it.</param>
    public PgEventsException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with the given message and cause.</summary>
    /// <param name="message">What is wrong and how to fix it.</param>
    /// <param name="innerException">The underlying error.</param>
    public PgEventsException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
