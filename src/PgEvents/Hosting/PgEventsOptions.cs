using System.Text.Json;

namespace PgEvents;

/// <summary>Configuration of a PgEvents consumer, validated when the host starts.</summary>
public sealed class PgEventsOptions
{
    /// <summary>
    /// Connection string of the database whose tables are captured; the PgEvents schema and the
    /// consumer cursors live there too. Required.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// Configures the connections beyond the connection string, as <c>AddNpgsqlDataSource</c> does:
    /// password or token providers (Entra ID, IAM), TLS callbacks, type mappings, multi-host settings.
    /// Called for each of the two data sources PgEvents builds from <see cref="ConnectionString"/> (its
    /// pooled one, and an unpooled one for the connections that hold session state: the lease and
    /// LISTEN, which must not go back to a pool), after the host's logger factory is set. Pooling
    /// settings made here apply to the pooled one only.
    /// </summary>
    public Action<Npgsql.NpgsqlDataSourceBuilder>? ConfigureDataSource { get; set; }

    private string _consumerName = "default";
    private bool _consumerNameSet;

    /// <summary>
    /// Name of this consumer's cursor in the database. Each name has its own cursor and subscription;
    /// processes sharing a name share the cursor. Default <c>default</c>, or the registration name
    /// for a consumer registered with <c>AddPgEvents(name, …)</c>.
    /// </summary>
    public string ConsumerName
    {
        get => _consumerName;
        set
        {
            _consumerName = value;
            _consumerNameSet = true;
        }
    }

    /// <summary>Gives a named registration's consumer its name, unless configuration (in any order) chose one.</summary>
    internal void UseRegistrationNameUnlessSet(string name)
    {
        if (!_consumerNameSet)
        {
            _consumerName = name;
        }
    }

    /// <summary>Schema holding the PgEvents tables. Default <c>pgevents</c>.</summary>
    public string SchemaName { get; set; } = PgEventsSchemaOptions.DefaultSchemaName;

    /// <summary>LISTEN/NOTIFY channel used as a wake-up. Default <c>pgevents</c>.</summary>
    public string NotificationChannel { get; set; } = PgEventsSchemaOptions.DefaultNotificationChannel;

    /// <summary>
    /// Capture writes made with <c>session_replication_role = replica</c> (logical replication apply
    /// workers, <c>pg_restore</c>, sync tools). Default <c>true</c>. See <see cref="PgEventsSchemaOptions.CaptureReplicaWrites"/>.
    /// </summary>
    public bool CaptureReplicaWrites { get; set; } = true;

    /// <summary>
    /// Install or upgrade the schema and the capture triggers of every mapped table when the
    /// consumer starts. Default true; turn off when migrations do it (<see cref="IEventConsumer.InstallAsync"/>).
    /// </summary>
    public bool InstallOnStart { get; set; } = true;

    /// <summary>
    /// How often the log is read when no notification arrives: the safety net for lost
    /// notifications. Default 1 second.
    /// </summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Most events read per round trip, and so most changes in one batch. Default 500.</summary>
    public int BatchSize { get; set; } = 500;

    /// <summary>
    /// Most bytes of row images read per round trip, and so in one batch: large rows make smaller
    /// batches, which bounds the consumer's memory. A single row larger than this is delivered alone.
    /// Default 8 MiB.
    /// </summary>
    public long MaxBatchBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>
    /// Where batches for <see cref="IBatchHandler"/>s may end. Default <see cref="PgEvents.BatchBoundary.Change"/>;
    /// <see cref="PgEvents.BatchBoundary.Transaction"/> keeps every source transaction in one batch.
    /// </summary>
    public BatchBoundary BatchBoundary { get; set; } = BatchBoundary.Change;

    /// <summary>
    /// Row-handler calls that may run at once, for handlers that wait on slow external systems.
    /// Changes of the same row (table and primary key) keep their order on one lane; changes of
    /// different rows run concurrently, so their order across rows is given up. Truncates, updates
    /// of a primary key and tables without one wait for everything before them. The cursor never
    /// passes a change that has not completed. Not with batch handlers, and handlers cannot use
    /// <see cref="RowChange{TRow}.GetTransactionAsync"/>. Default 1 (strict commit order).
    /// </summary>
    public int DeliveryLanes { get; set; } = 1;

    /// <summary>
    /// On the first start of this consumer for each mapped table, deliver every row the table already
    /// holds as a <see cref="ChangeKind.Snapshot"/> change, then its later changes: the snapshot is read
    /// online in primary-key chunks, in commit order with the live changes. Taken once per consumer and
    /// table (a table mapped later gets its own); see <see cref="IEventConsumer.RequestSnapshotAsync"/> to
    /// take one again. Mapped tables need a primary key. Default false.
    /// </summary>
    public bool InitialSnapshot { get; set; }

    /// <summary>
    /// Rows a snapshot reads per chunk transaction. Larger chunks read faster; while one is read,
    /// delivery of later commits waits for it (as for any committing writer). Default 1,000.
    /// </summary>
    public int SnapshotChunkSize { get; set; } = 1000;

    /// <summary>
    /// Backoff of a failing event (<see cref="PgEventsRetryOptions.InitialDelay"/>,
    /// <see cref="PgEventsRetryOptions.MaxDelay"/>, <see cref="PgEventsRetryOptions.BackoffMultiplier"/>)
    /// and the attempts before it is dead-lettered (<see cref="PgEventsRetryOptions.MaxAttempts"/>). Set
    /// its properties: <c>o.Retry.MaxAttempts = 3</c>, or <c>Retry:MaxAttempts</c> in configuration.
    /// </summary>
    public PgEventsRetryOptions Retry { get; } = new();

    /// <summary>Delay before reconnecting after the database connection was lost. Default 1 second, doubling up to 30 seconds.</summary>
    public TimeSpan ReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// What to do with the events that reach this consumer without a handler: those of a table it
    /// mapped before and no longer maps, committed before the new mapping started, and those of a
    /// mapped table renamed while it runs. (Tables it never mapped are not read at all.) Default
    /// <see cref="PgEvents.UnmappedTablePolicy.Block"/>.
    /// </summary>
    public UnmappedTablePolicy UnmappedTablePolicy { get; set; } = UnmappedTablePolicy.Block;

    /// <summary>
    /// How rows are deserialized. By default <c>created_at</c> maps to <c>CreatedAt</c>, names are
    /// case-insensitive and enums bind by name. Whatever options are set here, PgEvents deserializes
    /// with a copy that has its PostgreSQL text converters appended (bytea hex into <c>byte[]</c>,
    /// <c>±infinity</c>, <c>NaN</c>, intervals in every IntervalStyle, ranges, network and bit types);
    /// a converter of yours for the same type comes first and wins. This instance is not changed.
    /// </summary>
    public JsonSerializerOptions JsonSerializerOptions { get; set; } = RowDeserializer.CreateDefaultOptions();

    /// <summary>
    /// What to do with an event whose handlers keep failing. Default <see cref="PgEvents.FailurePolicy.Block"/>;
    /// <see cref="PgEvents.FailurePolicy.DeadLetter"/> gives up after <see cref="PgEventsRetryOptions.MaxAttempts"/>.
    /// </summary>
    public FailurePolicy FailurePolicy { get; set; } = FailurePolicy.Block;

    /// <summary>
    /// How often a standby instance (another process runs the same consumer name) tries to take
    /// over. Default 1 second.
    /// </summary>
    public TimeSpan StandbyRetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the LISTEN connection may stay silent before it is probed; a probe that gets no
    /// answer within this time makes the consumer reconnect (half-open connections). Default 15 seconds.
    /// </summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Background deletion of the events every registered consumer has passed: how old they must be
    /// (<see cref="PgEventsRetentionOptions.Age"/>, default 7 days, null keeps everything), how often a
    /// pass runs (<see cref="PgEventsRetentionOptions.Interval"/>) and how many transactions one
    /// statement deletes (<see cref="PgEventsRetentionOptions.BatchSize"/>). Set its properties:
    /// <c>o.Retention.Age = null</c>, or <c>Retention:Age</c> in configuration.
    /// </summary>
    public PgEventsRetentionOptions Retention { get; } = new();

    /// <summary>
    /// Allow mapping tables without a primary key. Off by default: such rows cannot be matched to a
    /// replica or read model, so mapping one is usually a mistake.
    /// </summary>
    public bool AllowTablesWithoutPrimaryKey { get; set; }

    /// <summary>
    /// How often the active consumer measures its lag for the <c>pgevents.lag.*</c> gauges. Measuring
    /// counts the undelivered events, so with a large backlog the sampler waits at least ten times as
    /// long as the count took. Default 5 seconds.
    /// </summary>
    public TimeSpan LagSampleInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Lag in time above which the health check reports Degraded. Default 5 minutes.</summary>
    public TimeSpan HealthCheckMaxLag { get; set; } = TimeSpan.FromMinutes(5);
}
