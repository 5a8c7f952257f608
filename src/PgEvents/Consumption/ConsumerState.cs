using Microsoft.Extensions.Logging;
using Npgsql;

namespace PgEvents;

/// <summary>
/// What one consumer instance knows about itself and shows in its status: its role (active or
/// standby), the event it is blocked on, the fault that keeps it from running. Written by the
/// delivery loop, read by status queries and health checks on other threads.
/// </summary>
internal sealed class ConsumerState(string name, TimeProvider time, ILogger logger)
{
    private volatile bool _active;
    private volatile bool _standby;
    private volatile BlockedEvent? _blocked;
    private volatile ConsumerFault? _fault;
    private volatile bool _ranOnThisConnection;

    public string Name { get; } = name;

    public bool IsActive => _active;

    public bool IsStandby => _standby;

    public BlockedEvent? Blocked => _blocked;

    public ConsumerFault? Fault => _fault;

    /// <summary>Whether the current connection got through a full cycle; see <see cref="ConfirmRunning"/>.</summary>
    public bool RanOnThisConnection => _ranOnThisConnection;

    public void BecomeActive()
    {
        _active = true;
        _standby = false;
    }

    public void BecomeStandby() => _standby = true;

    public void Stop()
    {
        _active = false;
        _standby = false;
    }

    public void StartConnection() => _ranOnThisConnection = false;

    public void Block(BlockedEvent blocked) => _blocked = blocked;

    public void Unblock() => _blocked = null;

    /// <summary>Clears the blocked mark only if it names this event (lanes block independently).</summary>
    public void UnblockIf(long position, long eventId)
    {
        var blocked = _blocked;
        if (blocked is not null && blocked.Position == position && blocked.EventId == eventId)
        {
            Interlocked.CompareExchange(ref _blocked, null, blocked);
        }
    }

    /// <summary>
    /// Notes that this connection got through a full cycle (a saved cursor, or a read that found
    /// nothing left): a fault is over, and the reconnect backoff starts over after the next failure.
    /// Becoming active is not enough, since a missing privilege may only show on the first write.
    /// </summary>
    public void ConfirmRunning()
    {
        _ranOnThisConnection = true;
        if (_fault is not null)
        {
            _fault = null;
            PgEventsLog.FaultCleared(logger, Name);
        }
    }

    /// <summary>Records a non-transient failure, counting it into the fault already open, if any.</summary>
    public ConsumerFault RecordFault(Exception error)
    {
        var (sqlState, message) = error switch
        {
            PostgresException postgres => (postgres.SqlState, postgres.MessageText),
            InvalidOperationException { InnerException: PostgresException postgres } => (postgres.SqlState, postgres.MessageText),
            _ => ((string?)null, error.Message),
        };
        var previous = _fault;
        var fault = new ConsumerFault(sqlState, message, previous?.Since ?? time.GetUtcNow(), (previous?.Attempts ?? 0) + 1);
        _fault = fault;
        return fault;
    }
}
