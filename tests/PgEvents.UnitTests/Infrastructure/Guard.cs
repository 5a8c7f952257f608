namespace PgEvents.UnitTests.Infrastructure;

/// <summary>
/// The most a test waits (in real time) for something that the fake clock already made due. Never a
/// sleep: awaits complete as soon as the awaited thing happens, and this only fails a broken test.
/// </summary>
public static class Guard
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public static Task<T> Within<T>(this Task<T> task) => task.WaitAsync(Timeout);

    public static Task Within(this Task task) => task.WaitAsync(Timeout);
}
