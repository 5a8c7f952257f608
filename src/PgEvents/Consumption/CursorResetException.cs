namespace PgEvents;

/// <summary>The cursor was reset by a replay while this consumer ran; it reloads and continues.</summary>
internal sealed class CursorResetException : Exception
{
    public CursorResetException()
        : base("The consumer's cursor was reset externally.")
    {
    }

    public CursorResetException(string message)
        : base(message)
    {
    }

    public CursorResetException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
