using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace PgEvents.Tests.Infrastructure;

/// <summary>One log entry as a logger received it.</summary>
public sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception);

/// <summary>
/// Keeps every log entry of the service provider it is added to, and lets a test wait for an entry:
/// the logger signals, so no test sleeps in the hope that something was logged.
/// </summary>
public sealed class LogCapture : ILoggerProvider
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();
    private readonly List<(Func<LogEntry, bool> Match, TaskCompletionSource<LogEntry> Signal)> _waiters = [];

    public IReadOnlyList<LogEntry> Entries => _entries.ToArray();

    public IReadOnlyList<LogEntry> WithEventId(int id) => _entries.Where(e => e.EventId.Id == id).ToList();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public async Task<LogEntry> WaitForAsync(Func<LogEntry, bool> match, string what, TimeSpan? timeout = null)
    {
        var signal = new TaskCompletionSource<LogEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_waiters)
        {
            if (_entries.FirstOrDefault(match) is { } found)
            {
                return found;
            }

            _waiters.Add((match, signal));
        }

        var limit = timeout ?? TimeSpan.FromSeconds(30);
        if (await Task.WhenAny(signal.Task, Task.Delay(limit)) != signal.Task)
        {
            throw new TimeoutException($"Expected a log entry ({what}) within {limit}; got: {string.Join(" | ", _entries.Select(e => $"{e.EventId.Id} {e.Message}"))}");
        }

        return await signal.Task;
    }

    public void Dispose()
    {
    }

    private void Add(LogEntry entry)
    {
        lock (_waiters)
        {
            _entries.Enqueue(entry);
            foreach (var waiter in _waiters.Where(w => w.Match(entry)).ToList())
            {
                waiter.Signal.TrySetResult(entry);
                _waiters.Remove(waiter);
            }
        }
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Add(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception));
    }
}
