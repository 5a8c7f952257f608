using System.Data;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace PgEvents;

/// <summary>
/// Reads the log after its cursor and delivers each event to every handler of its table, in
/// order. The cursor moves only past events whose handlers all succeeded; a failing event is
/// retried with capped exponential backoff and blocks everything after it.
/// </summary>
internal sealed class PgEventConsumer : IEventConsumer
{
    private static readonly TimeSpan MaxReconnectDelay = TimeSpan.FromSeconds(30);

    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlDataSource _sessions;
    private readonly SessionCheck _sessionCheck;
    private readonly PgEventsOptions _options;
    private readonly HandlerMap _handlers;
    private readonly IServiceScopeFactory _scopes;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SchemaSettings _settings;
    private readonly PgEventsSchema _schema;
    private readonly CursorStore _cursors;
    private readonly RowDeserializer _deserializer;
    private readonly WakeUpSignal _wakeUp = new();
    private readonly KeyValuePair<string, object?> _consumerTag;
    private readonly DeadLetterStore _deadLetters;
    private readonly LogRetention _retention;
    private readonly MappingValidator _validator;
    private readonly int _leaseKey;
    private readonly LagSampler _lag;

    private int _running;
    private int _prepared;
    private volatile bool _active;
    private volatile bool _standby;
    private volatile BlockedEvent? _blocked;
    private volatile ConsumerFault? _fault;
    private volatile bool _ranOnThisConnection;
    private readonly object _cursorLock = new();
    private LogPosition _cursorValue;
    private LogPosition _persisted;

    public PgEventConsumer(
        PgEventsDataSource dataSource,
        IOptions<PgEventsOptions> options,
        IEnumerable<HandlerRegistration> registrations,
        IServiceScopeFactory scopes,
        TimeProvider time,
        ILogger<PgEventConsumer>? logger = null)
    {
        _dataSource = dataSource.DataSource;
        _sessions = dataSource.SessionDataSource;
        _options = options.Value;
        _handlers = new HandlerMap(registrations);
        _scopes = scopes;
        _logger = logger ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _time = time;
        _settings = new SchemaSettings(_options.SchemaName, _options.NotificationChannel, _options.CaptureReplicaWrites);
        _schema = new PgEventsSchema(_dataSource, new PgEventsSchemaOptions
        {
            SchemaName = _options.SchemaName,
            NotificationChannel = _options.NotificationChannel,
            CaptureReplicaWrites = _options.CaptureReplicaWrites,
        }, _logger);
        _cursors = new CursorStore(_settings, _options.ConsumerName);
        _deserializer = new RowDeserializer(_options.JsonSerializerOptions);
        _consumerTag = new("pgevents.consumer", _options.ConsumerName);
        _deadLetters = new DeadLetterStore(_settings, _options.ConsumerName);
        _retention = new LogRetention(_settings);
        _validator = new MappingValidator(_dataSource, _options, _handlers);
        _leaseKey = SchemaSettings.DeriveKey("lease", _settings.SchemaName + "\0" + _options.ConsumerName);
        _sessionCheck = new SessionCheck(_sessions, _options.ConsumerName);
        _lag = new LagSampler(MeasureLagAsync, _options.LagSampleInterval, _time, _logger, _options.ConsumerName);
        ConsumerLag.Register(this);
    }

    /// <summary>The last lag measurement while this instance is active, for the lag gauges.</summary>
    internal LagSample? LastLag => _active ? _lag.Last : null;

    /// <summary>
    /// The delivery position. Written only by the consume loop, but read by status queries on other
    /// threads, and a two-field struct could be read half-updated without the lock.
    /// </summary>
    private LogPosition Cursor
    {
        get
        {
            lock (_cursorLock)
            {
                return _cursorValue;
            }
        }

        set
        {
            lock (_cursorLock)
            {
                _cursorValue = value;
            }
        }
    }

    public string Name => _options.ConsumerName;

    /// <summary>The non-transient error that keeps this instance from running, or null.</summary>
    internal ConsumerFault? Fault => _fault;

    public async Task InstallAsync(CancellationToken cancellationToken = default)
    {
        await _schema.InstallAsync(cancellationToken).ConfigureAwait(false);
        foreach (var table in _handlers.Tables)
        {
            await _schema.TrackTableAsync(table, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Checks that the consumer's connection is a session of its own and the mappings against the
    /// catalog and, with <see cref="PgEventsOptions.InstallOnStart"/>, installs the schema and
    /// triggers. The hosted service awaits this in its StartAsync so that a started host already
    /// captures every mapped table, and a bad mapping or a connection through a transaction-pooling
    /// PgBouncer fails host start (before anything is installed through it).
    /// </summary>
    internal async Task PrepareAsync(CancellationToken cancellationToken)
    {
        var connection = await _sessions.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using (connection.ConfigureAwait(false))
        {
            await _sessionCheck.VerifyAsync(connection, cancellationToken).ConfigureAwait(false);
        }

        await _validator.ValidateAsync(cancellationToken).ConfigureAwait(false);
        if (_options.InstallOnStart)
        {
            await InstallAsync(cancellationToken).ConfigureAwait(false);
        }

        // Without this, a capture trigger someone disabled (or a partition added without its
        // TRUNCATE trigger) would lose changes silently while the consumer reports itself healthy.
        await _schema.EnsureCapturedAsync(_handlers.Tables, cancellationToken).ConfigureAwait(false);

        Volatile.Write(ref _prepared, 1);
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            throw new InvalidOperationException($"PgEvents consumer '{Name}' is already running in this instance.");
        }

        try
        {
            if (Volatile.Read(ref _prepared) == 0)
            {
                try
                {
                    await PrepareAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }
            }

            var reconnectDelay = _options.ReconnectDelay;
            var reconnecting = false;
            while (!cancellationToken.IsCancellationRequested)
            {
                _ranOnThisConnection = false;
                if (await RunSessionAsync(reconnecting, cancellationToken).ConfigureAwait(false) is not { } failure)
                {
                    break;
                }

                var (error, transient) = failure;
                if (_ranOnThisConnection)
                {
                    // It ran before this failure: the backoff starts over.
                    reconnectDelay = _options.ReconnectDelay;
                }

                // The fault is recorded before the roles are cleared, so a status read in between
                // never shows a consumer that merely stopped.
                var fault = transient ? null : RecordFault(error);
                _active = false;
                _standby = false;
                if (fault is null)
                {
                    PgEventsLog.ConnectionLost(_logger, error, Name, reconnectDelay);
                }
                else
                {
                    PgEventsLog.NonTransientFailure(_logger, error, Name, fault.SqlState ?? "none", fault.Message, reconnectDelay);
                }

                PgEventsDiagnostics.Reconnects.Add(1, _consumerTag);
                try
                {
                    await Task.Delay(reconnectDelay, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                reconnectDelay = TimeSpan.FromTicks(Math.Min(reconnectDelay.Ticks * 2, Math.Max(MaxReconnectDelay.Ticks, _options.ReconnectDelay.Ticks)));
                reconnecting = true;
            }
        }
        finally
        {
            _active = false;
            _standby = false;
            PgEventsLog.ConsumerStopped(_logger, Name, Cursor);
            Volatile.Write(ref _running, 0);
        }
    }

    public async Task<ConsumerStatus> GetStatusAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var cursor = _active ? Cursor : await ReadStoredCursorAsync(connection, cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(
            $"""
            SELECT (SELECT coalesce(max(position), 0) FROM {_settings.Qualify("transactions")}),
                   (SELECT count(*) FROM {_settings.Qualify("transactions")} t JOIN {_settings.Qualify("events")} e ON e.xid = t.xid
                     WHERE t.position > @position)
                   + (SELECT count(*) FROM {_settings.Qualify("events")} e
                       WHERE e.xid = (SELECT xid FROM {_settings.Qualify("transactions")} WHERE position = @position)
                         AND e.event_id > @event_id),
                   (SELECT extract(epoch FROM now() - committed_at)::float8 FROM {_settings.Qualify("transactions")}
                     WHERE position > @position ORDER BY position LIMIT 1)
            """, connection);
        command.Parameters.AddWithValue("position", cursor.Position);
        command.Parameters.AddWithValue("event_id", cursor.EventId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var lagTime = reader.IsDBNull(2) ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Max(0, reader.GetDouble(2)));
        return new ConsumerStatus(Name, _active, _standby, reader.GetInt64(0), cursor.Position, cursor.EventId, reader.GetInt64(1), lagTime, _blocked, _fault);
    }

    private async Task<LogPosition> ReadStoredCursorAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT position, event_id FROM {_settings.Qualify("consumers")} WHERE name = @name", connection);
        command.Parameters.AddWithValue("name", Name);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new LogPosition(reader.GetInt64(0), reader.GetInt64(1))
            : LogPosition.Start;
    }

    /// <summary>
    /// One working session: opens an unpooled connection, checks that it is a session of its own, and
    /// consumes on it until it fails. Returns the failure and whether it is transient (a lost or
    /// broken connection, an overloaded or restarting server) or needs a fix (privileges, schema,
    /// connection settings); null when stopped. The connection, and with it the backend holding the
    /// lease, is closed before the failure is returned, so nothing waits or reports while the lease
    /// is still held.
    /// </summary>
    private async Task<(Exception Error, bool Transient)?> RunSessionAsync(bool reconnecting, CancellationToken cancellationToken)
    {
        NpgsqlConnection? connection = null;
        try
        {
            connection = await _sessions.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            await _sessionCheck.VerifyAsync(connection, cancellationToken).ConfigureAwait(false);
            await ConsumeAsync(connection, reconnecting, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (Exception e) when (cancellationToken.IsCancellationRequested && (e is OperationCanceledException || IsRetryable(e)))
        {
            // Stopping: whatever the connection did meanwhile is no fault.
            return null;
        }
        catch (Exception e) when (IsRetryable(e))
        {
            // A broken connection explains any error raised through it, whatever its type.
            return (e, IsTransient(e) || (connection is not null && IsBroken(connection)));
        }
        finally
        {
            if (connection is not null)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private async Task ConsumeAsync(NpgsqlConnection connection, bool reconnecting, CancellationToken cancellationToken)
    {
        // Listen before the first read: whatever commits after this point also wakes us up.
        // Every write on this connection (cursor, dead letters, transactional handler writes, retention)
        // is safe to lose in a server crash: it is redone when the events are delivered again. Not
        // waiting for the WAL flush keeps a disk sync off the delivery path.
        await using (var asyncCommit = new NpgsqlCommand("SET synchronous_commit = off", connection))
        {
            await asyncCommit.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await AcquireLeaseAsync(connection, cancellationToken).ConfigureAwait(false);
        await using var listener = await NotificationListener.StartAsync(
            _sessions, _options.NotificationChannel, _options.KeepAliveInterval, _wakeUp, cancellationToken).ConfigureAwait(false);
        var reader = new ChangeLogReader(_settings, _logger, _time);
        var doorbell = new Doorbell(_settings, _time);
        var readAfterCommitPhase = false;
        Cursor = _persisted = await _cursors.LoadAsync(connection, cancellationToken).ConfigureAwait(false);
        _active = true;
        _standby = false;
        if (reconnecting)
        {
            PgEventsLog.Reconnected(_logger, Name, Cursor);
        }
        else
        {
            PgEventsLog.ConsumerStarted(_logger, Name, Cursor);
        }

        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sampling = _lag.RunAsync(stopSampling.Token);
        var purging = new RetentionWorker(_dataSource, _retention, _options, _time, _logger).RunAsync(stopSampling.Token);
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                _wakeUp.Reset();
                var batch = await reader.ReadAsync(connection, Cursor, _options.BatchSize, cancellationToken).ConfigureAwait(false);
                if (batch.Events.Count > 0)
                {
                    // Busy: writers need not notify (and so do not queue on PostgreSQL's NOTIFY lock).
                    await doorbell.ReleaseAsync(connection, cancellationToken).ConfigureAwait(false);
                    readAfterCommitPhase = false;
                    PgEventsDiagnostics.BatchSize.Record(batch.Events.Count, _consumerTag);
                    try
                    {
                        foreach (var captured in batch.Events)
                        {
                            await DeliverAsync(connection, captured, cancellationToken).ConfigureAwait(false);
                            Cursor = captured.LogPosition;
                        }

                        await PersistCursorAsync(connection, cancellationToken).ConfigureAwait(false);
                    }
                    catch (CursorResetException)
                    {
                        // A replay moved the cursor: continue from where it now points.
                        _blocked = null;
                        Cursor = _persisted = await _cursors.LoadAsync(connection, cancellationToken).ConfigureAwait(false);
                        reader = new ChangeLogReader(_settings, _logger, _time);
                        PgEventsLog.CursorReset(_logger, Name, Cursor);
                    }

                    continue;
                }

                // A read found nothing left to deliver: the whole cycle works on this connection.
                ConfirmRunning();
                if (await _cursors.WasResetAsync(connection, cancellationToken).ConfigureAwait(false))
                {
                    Cursor = _persisted = await _cursors.LoadAsync(connection, cancellationToken).ConfigureAwait(false);
                    reader = new ChangeLogReader(_settings, _logger, _time);
                    PgEventsLog.CursorReset(_logger, Name, Cursor);
                    continue;
                }

                if (batch.WaitingOn is not null)
                {
                    // The holders of a hole end by committing (which fills it) or by aborting (which
                    // notifies nobody): wait on their locks, which release the moment they end.
                    await reader.WaitForPendingHoleAsync(connection, _options.PollInterval, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (!readAfterCommitPhase)
                {
                    // From now on writers notify. One that checked before, or whose notification
                    // arrived before its commit was visible, is in its commit phase: wait for
                    // those, then read once more before sleeping.
                    await doorbell.HoldAsync(connection, _options.PollInterval, cancellationToken).ConfigureAwait(false);
                    readAfterCommitPhase = true;
                    continue;
                }

                readAfterCommitPhase = false;
                var woken = await WaitForWakeUpAsync(listener, _options.PollInterval, cancellationToken).ConfigureAwait(false);
                PgEventsDiagnostics.WakeUps.Add(1, _consumerTag, new("pgevents.wakeup.source", woken ? "notify" : "poll"));
            }
        }
        finally
        {
            await stopSampling.CancelAsync().ConfigureAwait(false);
            await sampling.ConfigureAwait(false);
            await purging.ConfigureAwait(false);
            if (Cursor != _persisted && connection.State == ConnectionState.Open)
            {
                // Shutting down: keep the progress made, so a restart repeats at most the event in flight.
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await PersistCursorAsync(connection, timeout.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is NpgsqlException or OperationCanceledException or InvalidOperationException or CursorResetException)
                {
                    // At-least-once still holds: the next run repeats what was not persisted.
                }
            }
        }
    }

    public async Task<IReadOnlyList<DeadLetter>> GetDeadLettersAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var letters = await _deadLetters.ListAsync(connection, id: null, cancellationToken).ConfigureAwait(false);
        return letters.Select(l => l.Letter).ToArray();
    }

    public async Task ReplayDeadLetterAsync(long id, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        var found = await _deadLetters.ListAsync(connection, id, cancellationToken).ConfigureAwait(false);
        if (found.Count == 0)
        {
            throw new PgEventsException($"Consumer '{Name}' has no dead letter with id {id}.");
        }

        var captured = found[0].Event;
        var handlers = _handlers.For(captured.TableName);
        if (handlers.Count == 0)
        {
            throw new PgEventsException($"Dead letter {id} belongs to table {captured.TableName}, which has no handler in consumer '{Name}'.");
        }

        try
        {
            // A transactional handler's writes and the removal of the dead letter commit together.
            await RunHandlersAsync(connection, captured, handlers, (_, token) => _deadLetters.DeleteAsync(connection, id, token), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException && connection.State == ConnectionState.Open)
        {
            await _deadLetters.RecordFailedReplayAsync(connection, id, $"{e.GetType().Name}: {e.Message}", CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    public async Task ResetCursorAsync(long position, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(position, 1);
        await ResetToAsync(new LogPosition(position - 1, long.MaxValue), cancellationToken).ConfigureAwait(false);
    }

    public async Task ResetCursorAsync(DateTimeOffset committedSince, CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand(
            $"""
            SELECT coalesce((SELECT min(position) FROM {_settings.Qualify("transactions")} WHERE committed_at >= @since) - 1,
                            (SELECT max(position) FROM {_settings.Qualify("transactions")}), 0)
            """, connection);
        command.Parameters.AddWithValue("since", committedSince.ToUniversalTime());
        var position = (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
        await ResetToAsync(new LogPosition(position, long.MaxValue), cancellationToken).ConfigureAwait(false);
    }

    private async Task ResetToAsync(LogPosition position, CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await _cursors.ResetAsync(connection, position, cancellationToken).ConfigureAwait(false);

        // Wake a running instance (here or in another process) so it picks up the reset at once.
        await using var notify = new NpgsqlCommand("SELECT pg_notify(@channel, '')", connection);
        notify.Parameters.AddWithValue("channel", _options.NotificationChannel);
        await notify.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        PgEventsLog.CursorResetRequested(_logger, Name, position);
    }

    /// <summary>
    /// Waits, as a standby, until this connection holds the consumer's session advisory lock. The
    /// lock lives exactly as long as the connection, so an instance that dies or loses its connection
    /// releases it, and an instance that lost it can no longer read or save with that connection.
    /// </summary>
    private async Task AcquireLeaseAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(@class, @key)", connection);
        command.Parameters.AddWithValue("class", SchemaSettings.AdvisoryLockClass);
        command.Parameters.AddWithValue("key", _leaseKey);
        var announced = false;
        while (!(bool)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
        {
            _standby = true;
            if (!announced)
            {
                PgEventsLog.Standby(_logger, Name);
                announced = true;
            }

            await Task.Delay(_options.StandbyRetryInterval, _time, cancellationToken).ConfigureAwait(false);
        }

        if (announced)
        {
            PgEventsLog.TookOver(_logger, Name);
        }
    }

    /// <summary>
    /// Notes that this connection got through a full cycle (a saved cursor, or a read that found
    /// nothing left): a fault is over, and the reconnect backoff starts over after the next failure.
    /// Becoming active is not enough, since a missing privilege may only show on the first write.
    /// </summary>
    private void ConfirmRunning()
    {
        _ranOnThisConnection = true;
        if (_fault is not null)
        {
            _fault = null;
            PgEventsLog.FaultCleared(_logger, Name);
        }
    }

    /// <summary>Records a non-transient failure, counting it into the fault already open, if any.</summary>
    private ConsumerFault RecordFault(Exception error)
    {
        var (sqlState, message) = error switch
        {
            PostgresException postgres => (postgres.SqlState, postgres.MessageText),
            InvalidOperationException { InnerException: PostgresException postgres } => (postgres.SqlState, postgres.MessageText),
            _ => ((string?)null, error.Message),
        };
        var previous = _fault;
        var fault = new ConsumerFault(sqlState, message, previous?.Since ?? _time.GetUtcNow(), (previous?.Attempts ?? 0) + 1);
        _fault = fault;
        return fault;
    }

    private async Task<LagSample> MeasureLagAsync(CancellationToken cancellationToken)
    {
        var status = await GetStatusAsync(cancellationToken).ConfigureAwait(false);
        return new LagSample(status.LagEvents, status.LagTime.TotalSeconds);
    }

    private async Task DeadLetterAsync(NpgsqlConnection connection, CapturedEvent captured, int attempts, Exception error, CancellationToken cancellationToken)
    {
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
        {
            await _deadLetters.AddAsync(connection, transaction, captured, attempts, $"{error.GetType().Name}: {error.Message}", cancellationToken).ConfigureAwait(false);
            if (!await _cursors.SaveAsync(connection, captured.LogPosition, transaction, cancellationToken).ConfigureAwait(false))
            {
                throw new CursorResetException();
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        Cursor = _persisted = captured.LogPosition;
        _blocked = null;
        PgEventsLog.DeadLettered(_logger, error, Name, captured.TableName, captured.Position, captured.EventId, attempts);
        PgEventsDiagnostics.DeadLetters.Add(1, _consumerTag, new("pgevents.table", captured.Table));
    }

    private async Task<bool> WaitForWakeUpAsync(NotificationListener listener, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (listener.Completion.IsCompleted)
        {
            // The listening connection died: surface its failure so the consumer reconnects.
            await listener.Completion.ConfigureAwait(false);
            throw new NpgsqlException("The LISTEN connection closed unexpectedly.");
        }

        using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var wait = _wakeUp.WaitAsync(timeout, _time, stopWaiting.Token);
        var first = await Task.WhenAny(wait, listener.Completion).ConfigureAwait(false);
        if (first == listener.Completion)
        {
            await stopWaiting.CancelAsync().ConfigureAwait(false);
            await listener.Completion.ConfigureAwait(false);
            throw new NpgsqlException("The LISTEN connection closed unexpectedly.");
        }

        return await wait.ConfigureAwait(false);
    }

    private async Task PersistCursorAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        if (Cursor == _persisted)
        {
            return;
        }

        if (!await _cursors.SaveAsync(connection, Cursor, transaction: null, cancellationToken).ConfigureAwait(false))
        {
            throw new CursorResetException();
        }

        _persisted = Cursor;
        ConfirmRunning();
    }

    private async Task DeliverAsync(NpgsqlConnection connection, CapturedEvent captured, CancellationToken cancellationToken)
    {
        var handlers = _handlers.For(captured.TableName);
        if (handlers.Count == 0 && _options.UnmappedTablePolicy == UnmappedTablePolicy.Skip)
        {
            PgEventsLog.UnmappedTableSkipped(_logger, Name, captured.TableName, captured.Position, captured.EventId);
            return;
        }

        var attempts = 0;
        var delay = _options.RetryInitialDelay;
        var firstFailure = DateTimeOffset.MinValue;
        while (true)
        {
            try
            {
                await DispatchAsync(connection, captured, handlers, cancellationToken).ConfigureAwait(false);
                if (attempts > 0)
                {
                    _blocked = null;
                    PgEventsLog.DeliveryRecovered(_logger, Name, captured.TableName, captured.Position, captured.EventId, attempts);
                }

                PgEventsDiagnostics.EventsDelivered.Add(1, _consumerTag, new("pgevents.table", captured.Table));
                return;
            }
            catch (Exception e) when (e is not CursorResetException)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    // Stopping: the event is abandoned, not failed; the next run delivers it again.
                    throw new OperationCanceledException("The consumer stopped while delivering an event.", e, cancellationToken);
                }

                if (IsBroken(connection))
                {
                    // Not the event's fault: reconnect and deliver it again.
                    throw new NpgsqlException("The consumer's connection broke while delivering an event.", e);
                }

                if (attempts == 0)
                {
                    firstFailure = _time.GetUtcNow();

                    // Whatever happens to this event, what came before it is done.
                    await PersistCursorAsync(connection, cancellationToken).ConfigureAwait(false);
                }

                attempts++;
                if (_options.FailurePolicy == FailurePolicy.DeadLetter && attempts >= _options.MaxAttempts)
                {
                    await DeadLetterAsync(connection, captured, attempts, e, cancellationToken).ConfigureAwait(false);
                    return;
                }

                _blocked = new BlockedEvent(captured.Position, captured.EventId, captured.TableName, attempts, $"{e.GetType().Name}: {e.Message}", firstFailure);
                PgEventsLog.DeliveryFailed(_logger, e, Name, captured.Kind, captured.TableName, captured.Position, captured.EventId, attempts, delay);
                PgEventsDiagnostics.Retries.Add(1, _consumerTag, new("pgevents.table", captured.Table));
                await BackOffAsync(connection, delay, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min((long)(delay.Ticks * _options.RetryBackoffMultiplier), _options.RetryMaxDelay.Ticks));
            }
        }
    }

    private async Task DispatchAsync(
        NpgsqlConnection connection, CapturedEvent captured, IReadOnlyList<HandlerRegistration> handlers, CancellationToken cancellationToken)
    {
        if (handlers.Count == 0)
        {
            throw new PgEventsException(
                $"No handler is registered for table {captured.TableName} (event at position {captured.LogPosition}). " +
                $"Register one with AddHandler<TRow, THandler>(\"{captured.Schema}.{captured.Table}\"), untrack the table, " +
                "or set PgEventsOptions.UnmappedTablePolicy to Skip. If a mapped table was renamed, its events carry the new name " +
                "from the rename on: map the new name.");
        }

        using var activity = PgEventsDiagnostics.ActivitySource.StartActivity("pgevents.deliver", ActivityKind.Consumer);
        if (activity is not null)
        {
            activity.SetTag("pgevents.consumer", Name);
            activity.SetTag("pgevents.table", captured.TableName.ToString());
            activity.SetTag("pgevents.operation", captured.Kind.ToString());
            activity.SetTag("pgevents.position", captured.Position);
            activity.SetTag("pgevents.event_id", captured.EventId);
        }

        var started = _time.GetTimestamp();
        try
        {
            var committed = await RunHandlersAsync(connection, captured, handlers, async (transaction, token) =>
            {
                // Handler writes and the cursor commit together: effectively once.
                if (transaction is not null && !await _cursors.SaveAsync(connection, captured.LogPosition, transaction, token).ConfigureAwait(false))
                {
                    throw new CursorResetException();
                }
            }, cancellationToken).ConfigureAwait(false);
            if (committed)
            {
                Cursor = _persisted = captured.LogPosition;
            }
        }
        catch (Exception e)
        {
            activity?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }
        finally
        {
            PgEventsDiagnostics.HandlerDuration.Record(_time.GetElapsedTime(started).TotalSeconds, _consumerTag);
        }
    }

    /// <summary>
    /// Waits before retrying a failing event. A reset of the cursor (replay, or skipping past the
    /// poisoned event) arrives as a notification: it ends the wait and abandons the event at once.
    /// </summary>
    private async Task BackOffAsync(NpgsqlConnection connection, TimeSpan delay, CancellationToken cancellationToken)
    {
        var until = _time.GetTimestamp() + (long)(delay.TotalSeconds * _time.TimestampFrequency);
        while (true)
        {
            var remaining = TimeSpan.FromSeconds((until - _time.GetTimestamp()) / (double)_time.TimestampFrequency);
            if (remaining <= TimeSpan.Zero)
            {
                return;
            }

            _wakeUp.Reset();
            if (await _wakeUp.WaitAsync(remaining, _time, cancellationToken).ConfigureAwait(false)
                && await _cursors.WasResetAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                throw new CursorResetException();
            }
        }
    }

    /// <summary>
    /// Runs every handler of an event in one DI scope. If a handler asked for the transaction,
    /// <paramref name="beforeCommit"/> runs inside it and it is committed; returns whether it was.
    /// </summary>
    private async Task<bool> RunHandlersAsync(
        NpgsqlConnection connection,
        CapturedEvent captured,
        IReadOnlyList<HandlerRegistration> handlers,
        Func<NpgsqlTransaction?, CancellationToken, Task> beforeCommit,
        CancellationToken cancellationToken)
    {
        var scope = _scopes.CreateAsyncScope();
        await using (scope.ConfigureAwait(false))
        {
            var transaction = new EventTransactionScope(connection);
            await using (transaction.ConfigureAwait(false))
            {
                foreach (var handler in handlers)
                {
                    await handler.Invoke(scope.ServiceProvider, captured, _deserializer, transaction, cancellationToken).ConfigureAwait(false);
                }

                await beforeCommit(transaction.Transaction, cancellationToken).ConfigureAwait(false);
                if (transaction.Transaction is null)
                {
                    return false;
                }

                await transaction.Transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return true;
            }
        }
    }

    private static bool IsBroken(NpgsqlConnection connection) =>
        connection.FullState.HasFlag(ConnectionState.Broken) || connection.State == ConnectionState.Closed;

    /// <summary>
    /// Failures the consumer retries after reconnecting: everything that comes from the database or
    /// the network, and PgEvents' own refusals (a connection that is not a session of its own). Any
    /// other exception is a bug and ends <see cref="RunAsync"/>.
    /// </summary>
    private static bool IsRetryable(Exception e) =>
        e is NpgsqlException or IOException or TimeoutException or PgEventsException
        || (e is InvalidOperationException && e.InnerException is NpgsqlException);

    /// <summary>
    /// Whether reconnecting alone can cure a failure. Npgsql knows the transient server errors by
    /// SQLSTATE (57P01 admin shutdown, 53300 too many connections, 08006, ...) and treats its own
    /// errors as transient when an I/O error or a timeout caused them. PgBouncer reports its pool and
    /// connection troubles as 08P01, which Npgsql does not list; the whole 08 class is a connection
    /// problem. Everything else (42501 insufficient privilege, 42P01 undefined table, 3D000 no such
    /// database, 28P01 failed login, a PgEvents refusal) needs a fix and is reported as a fault.
    /// </summary>
    private static bool IsTransient(Exception e) => e switch
    {
        PostgresException postgres => postgres.IsTransient || postgres.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException npgsql => npgsql.IsTransient,
        IOException or TimeoutException => true,
        InvalidOperationException { InnerException: { } inner } => IsTransient(inner),
        _ => false,
    };
}
