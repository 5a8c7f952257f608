using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace PgEvents;

/// <summary>
/// The consumer as the host sees it: builds the parts that do the work and hands each call to the
/// one whose job it is. Preparation (session check, mapping validation, install) is here; delivery is
/// in <see cref="DeliveryLoop"/>, kept alive by <see cref="ReconnectingRunner"/>; failures are
/// handled by <see cref="FailurePolicyRunner"/>; status by <see cref="ConsumerStatusReader"/>;
/// dead letters and cursor resets by <see cref="ConsumerAdmin"/>.
/// </summary>
internal sealed class PgEventConsumer : IEventConsumer
{
    private readonly PgEventsOptions _options;
    private readonly HandlerMap _handlers;
    private readonly PgEventsSchema _schema;
    private readonly SessionCheck _sessionCheck;
    private readonly Microsoft.Extensions.Logging.ILogger _logger;
    private readonly SessionConnections _sessions;
    private readonly MappingValidator _validator;
    private readonly ConsumerState _state;
    private readonly DeliveryProgress _progress;
    private readonly ConsumerStatusReader _status;
    private readonly ConsumerAdmin _admin;
    private readonly ReconnectingRunner _runner;
    private readonly LagSampler _lag;
    private readonly SnapshotStore _snapshotStore;
    private readonly SnapshotWorker _snapshots;

    private int _running;
    private int _prepared;

    public PgEventConsumer(
        PgEventsDataSource dataSource,
        PgEventsOptions options,
        IEnumerable<HandlerRegistration> registrations,
        IServiceScopeFactory scopes,
        TimeProvider time,
        PgEventsMetrics metrics,
        ILoggerFactory? loggerFactory = null)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        _options = options;
        _logger = loggerFactory.CreateLogger(PgEventsLogCategories.Consumer);
        _sessions = dataSource.Sessions;
        _handlers = new HandlerMap(registrations);
        var settings = new SchemaSettings(_options.SchemaName, _options.NotificationChannel, _options.CaptureReplicaWrites);
        _schema = new PgEventsSchema(dataSource.DataSource, new PgEventsSchemaOptions
        {
            SchemaName = _options.SchemaName,
            NotificationChannel = _options.NotificationChannel,
            CaptureReplicaWrites = _options.CaptureReplicaWrites,
        }, loggerFactory.CreateLogger(PgEventsLogCategories.Schema));
        _validator = new MappingValidator(dataSource.DataSource, _options, _handlers);
        _sessionCheck = new SessionCheck(_sessions.Source, _options.ConsumerName);

        _state = new ConsumerState(_options.ConsumerName, time, _logger);
        var cursors = new CursorStore(settings, _options.ConsumerName);
        _progress = new DeliveryProgress(cursors, _state);
        var deadLetters = new DeadLetterStore(settings, _options.ConsumerName);
        var dispatcher = new EventDispatcher(
            _options, _handlers, scopes, new RowDeserializer(_options.JsonSerializerOptions), metrics, time);
        var wakeUp = new WakeUpSignal();
        _snapshotStore = new SnapshotStore(settings, _options.ConsumerName);
        _snapshots = new SnapshotWorker(dataSource.DataSource, _sessions, _snapshotStore, _progress, wakeUp, _options, metrics, time, _logger);
        _status = new ConsumerStatusReader(dataSource.DataSource, settings, _state, _progress, _snapshotStore);
        _admin = new ConsumerAdmin(dataSource.DataSource, settings, _options, cursors, deadLetters, dispatcher, _logger);
        _lag = new LagSampler(_status.MeasureLagAsync, _options.LagSampleInterval, time, _logger, _options.ConsumerName);
        var loop = new DeliveryLoop(
            _options,
            _handlers.Tables,
            _handlers.HasBatchHandlers,
            settings,
            _sessions,
            new ConsumerLease(settings, _options, _state, time, _logger),
            _progress,
            new FailurePolicyRunner(_options, dispatcher, _progress, deadLetters, dataSource.DataSource, _state, wakeUp, metrics, time, _logger),
            _state,
            wakeUp,
            _lag,
            new RetentionWorker(dataSource.DataSource, new LogRetention(settings), _options, time, loggerFactory.CreateLogger(PgEventsLogCategories.Retention)),
            _snapshots,
            metrics,
            time,
            loggerFactory.CreateLogger(PgEventsLogCategories.Log),
            _logger);
        _runner = new ReconnectingRunner(_options, _sessions, _sessionCheck, loop, _state, metrics, time, _logger);
        metrics.ObserveLagOf(_options.ConsumerName, () => _state.IsActive ? _lag.Last : null);
    }

    public string Name => _options.ConsumerName;

    /// <summary>Whether <see cref="RunAsync"/> runs in this process, whether or not it is connected yet.</summary>
    internal bool IsRunning => Volatile.Read(ref _running) == 1;

    /// <summary>The tables this consumer's handlers are mapped to.</summary>
    internal IReadOnlyCollection<TableName> Tables => _handlers.Tables;

    /// <summary>The non-transient error that keeps this instance from running, or null.</summary>
    internal ConsumerFault? Fault => _state.Fault;

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
        var session = await _sessions.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (session.ConfigureAwait(false))
        {
            await _sessionCheck.VerifyAsync(session.Connection, cancellationToken).ConfigureAwait(false);
        }

        await _validator.ValidateAsync(cancellationToken).ConfigureAwait(false);
        if (_options.InstallOnStart)
        {
            await InstallAsync(cancellationToken).ConfigureAwait(false);
        }
        else if (await _schema.GetInstalledVersionAsync(cancellationToken).ConfigureAwait(false) is var installed && installed < PgEventsSchema.LatestVersion)
        {
            // Otherwise the first read fails on a missing column, far from the cause.
            throw new PgEventsException(
                $"The PgEvents schema '{_options.SchemaName}' is at version {installed}, and this version of PgEvents needs version {PgEventsSchema.LatestVersion}. " +
                "Install it (IEventConsumer.InstallAsync or PgEventsSchema.InstallAsync, e.g. from your migrations), or set InstallOnStart.");
        }

        // Without this, a capture trigger someone disabled (or a partition added without its
        // TRUNCATE trigger) would lose changes silently while the consumer reports itself healthy.
        await _schema.EnsureCapturedAsync(_handlers.Tables, cancellationToken).ConfigureAwait(false);

        if (_options.InitialSnapshot)
        {
            // Recorded once per consumer and table: a later start finds it and takes none.
            var requests = await _sessions.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using (requests.ConfigureAwait(false))
            {
                foreach (var table in _handlers.Tables)
                {
                    await _snapshotStore.RequestAsync(requests.Connection, table, initial: true, cancellationToken).ConfigureAwait(false);
                }
            }
        }

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

            await _runner.RunAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _state.Stop();
            PgEventsLog.ConsumerStopped(_logger, Name, _progress.Delivered);
            Volatile.Write(ref _running, 0);
        }
    }

    public Task<ConsumerStatus> GetStatusAsync(CancellationToken cancellationToken = default) => _status.ReadAsync(cancellationToken);

    public Task<IReadOnlyList<DeadLetter>> GetDeadLettersAsync(CancellationToken cancellationToken = default) =>
        _admin.GetDeadLettersAsync(cancellationToken);

    public Task ReplayDeadLetterAsync(long id, CancellationToken cancellationToken = default) =>
        _admin.ReplayDeadLetterAsync(id, cancellationToken);

    public Task ResetCursorToPositionAsync(long position, CancellationToken cancellationToken = default) =>
        _admin.ResetCursorAsync(position, cancellationToken);

    public async Task RequestSnapshotAsync(string table, CancellationToken cancellationToken = default)
    {
        var name = TableName.Parse(table);
        if (!_handlers.Tables.Contains(name))
        {
            throw new PgEventsException(
                $"PgEvents consumer '{Name}' cannot snapshot table {name}: no handler of this consumer is mapped to it, so nothing would receive its rows or its later changes.");
        }

        var session = await _sessions.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using (session.ConfigureAwait(false))
        {
            await _snapshotStore.RequestAsync(session.Connection, name, initial: false, cancellationToken).ConfigureAwait(false);
        }

        PgEventsLog.SnapshotRequested(_logger, Name, name);
        _snapshots.NotifyRequested();
    }

    public Task ResetCursorToTimeAsync(DateTimeOffset committedSince, CancellationToken cancellationToken = default) =>
        _admin.ResetCursorAsync(committedSince, cancellationToken);
}
