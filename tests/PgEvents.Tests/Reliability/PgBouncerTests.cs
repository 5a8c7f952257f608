using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

/// <summary>
/// A database of its own behind a throwaway PgBouncer with four entries: one in transaction pooling,
/// one in statement pooling, one in session pooling, and one whose mode a test switches. Where PgBouncer is not installed the
/// tests are skipped (<see cref="PgBouncerFactAttribute"/>) and nothing starts, except under CI,
/// where starting fails and so does every test.
/// </summary>
public sealed class PgBouncerFixture : IAsyncLifetime
{
    public const string TransactionPool = "transaction_pool";
    public const string StatementPool = "statement_pool";
    public const string SessionPool = "session_pool";
    public const string Switchable = "switchable_pool";

    // Few server connections for many writers: the pooler has to hand them from client to client.
    public const int TransactionPoolSize = 3;

    private PgBouncer? _bouncer;

    public DatabaseFixture Database { get; } = new();

    internal PgBouncer Bouncer => _bouncer ?? throw new InvalidOperationException("PgBouncer was not started: " + PgBouncer.SkipReason);

    public async Task InitializeAsync()
    {
        await Database.InitializeAsync();
        if (PgBouncer.SkipReason is null)
        {
            _bouncer = await PgBouncer.StartAsync(Database.ConnectionString, new Dictionary<string, (string, int)>
            {
                [TransactionPool] = ("transaction", TransactionPoolSize),
                [StatementPool] = ("statement", 20),
                [SessionPool] = ("session", 20),
                [Switchable] = ("session", 20),
            });
        }
    }

    public async Task DisposeAsync()
    {
        if (_bouncer is not null)
        {
            await _bouncer.DisposeAsync();
        }

        await Database.DisposeAsync();
    }
}

public sealed class PgBouncerTests(PgBouncerFixture fixture) : IClassFixture<PgBouncerFixture>
{
    private static readonly HealthCheckContext Context = new();

    private DatabaseFixture Db => fixture.Database;

    private static ConsumerHost CreateConsumer(string connectionString, string name, string table, LogCapture? logs = null, Action<PgEventsOptions>? configure = null) =>
        ConsumerHost.Create(connectionString, b => b.AddHandler<Item, RecordingHandler<Item>>(table),
            o =>
            {
                o.ConsumerName = name;
                configure?.Invoke(o);
            },
            services: s =>
            {
                if (logs is not null)
                {
                    s.AddLogging(l => l.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
                }
            });

    private static PgEventsHealthCheck HealthCheckOf(ConsumerHost host) =>
        new(host.Consumer, host.Services.GetRequiredService<IOptions<PgEventsOptions>>().Value.HealthCheckMaxLag);

    private static async Task<HealthCheckResult> WaitForHealthAsync(ConsumerHost host, HealthStatus expected)
    {
        var check = HealthCheckOf(host);
        return await Eventually.UntilAsync(() => check.CheckHealthAsync(Context), result => result.Status == expected,
            result => $"the health check should become {expected}; it is {result.Status}: {result.Description}");
    }

    private static void ShouldNameTheFix(string message)
    {
        message.Should().Contain("needs a database session of its own")
            .And.Contain("pool_mode = session")
            .And.Contain("directly to PostgreSQL")
            .And.Contain("may stay behind transaction pooling");
    }

    [PgBouncerFact]
    public async Task A_consumer_behind_transaction_pooling_refuses_to_start_and_names_the_fix()
    {
        await Db.ExecuteAsync("CREATE TABLE refused_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = CreateConsumer(fixture.Bouncer.ConnectionString(PgBouncerFixture.TransactionPool, "refused-consumer"), "refused", "refused_items");

        var start = async () => await host.StartAsync();

        var refusal = (await start.Should().ThrowAsync<PgEventsException>()).Which;
        ShouldNameTheFix(refusal.Message);
        refusal.Message.Should().Contain("a second connection was given the working connection's backend");
        (await Db.ScalarAsync<long>("SELECT count(*) FROM pg_namespace WHERE nspname = 'log_refused'"))
            .Should().Be(0, "the refusal comes before anything is installed through the pooler");
    }

    [PgBouncerFact]
    public async Task A_consumer_behind_statement_pooling_refuses_to_start_and_names_the_fix()
    {
        await Db.ExecuteAsync("CREATE TABLE statement_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = CreateConsumer(fixture.Bouncer.ConnectionString(PgBouncerFixture.StatementPool, "statement-consumer"), "statement", "statement_items");

        var start = async () => await host.StartAsync();

        var refusal = (await start.Should().ThrowAsync<PgEventsException>()).Which;
        ShouldNameTheFix(refusal.Message);
        refusal.Message.Should().Contain("transaction blocks not allowed in statement pooling mode");
    }

    [PgBouncerFact]
    public async Task A_consumer_behind_session_pooling_takes_its_lease_listens_and_delivers()
    {
        await Db.ExecuteAsync("CREATE TABLE session_items (id bigint PRIMARY KEY, label text NOT NULL)");

        // With an hour-long poll, rows written after the first read arrive only through LISTEN/NOTIFY.
        await using var host = await CreateConsumer(fixture.Bouncer.ConnectionString(PgBouncerFixture.SessionPool, "session-consumer"), "session", "session_items",
            configure: o => o.PollInterval = TimeSpan.FromHours(1)).StartAsync();
        await Eventually.UntilAsync(async () => (await host.Consumer.GetStatusAsync()).IsActive, "the consumer should become active");

        for (var id = 1; id <= 5; id++)
        {
            await Db.ExecuteAsync("INSERT INTO session_items VALUES (@id, 'x')", ("id", (long)id));
        }

        await host.Sink.WaitForCountAsync(5);
        FaultHelpers.Ids(host.Sink).Should().Equal(1, 2, 3, 4, 5);
        (await HealthCheckOf(host).CheckHealthAsync(Context)).Status.Should().Be(HealthStatus.Healthy);
    }

    [PgBouncerFact]
    public async Task Writers_behind_transaction_pooling_are_captured_and_delivered_in_commit_order_to_a_consumer_connected_directly()
    {
        const int writers = 12;
        const int transactionsPerWriter = 20;
        await Db.ExecuteAsync("CREATE TABLE pooled_writes (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await CreateConsumer(Db.ConnectionString, "direct", "pooled_writes").StartAsync();

        // Each writer is a client connection of its own; PgBouncer runs their transactions on three
        // server connections, so consecutive transactions of one backend belong to different clients.
        var committed = new ConcurrentBag<(long[] Ids, int Backend)>();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(async writer =>
        {
            await using var connection = new NpgsqlConnection(fixture.Bouncer.ConnectionString(PgBouncerFixture.TransactionPool, $"writer-{writer}") + ";Pooling=false");
            await connection.OpenAsync();
            for (var i = 0; i < transactionsPerWriter; i++)
            {
                var first = ((long)writer * transactionsPerWriter + i) * 3;
                var ids = i % 2 == 0 ? new[] { first, first + 1, first + 2 } : [first];
                await using var transaction = await connection.BeginTransactionAsync();
                await using var insert = new NpgsqlCommand(
                    "INSERT INTO pooled_writes SELECT id, 'row' FROM unnest(@ids) AS id ORDER BY id; SELECT pg_backend_pid()", connection, transaction);
                insert.Parameters.AddWithValue("ids", ids);
                var backend = (int)(await insert.ExecuteScalarAsync())!;
                await transaction.CommitAsync();
                committed.Add((ids, backend));
            }
        }));

        var total = committed.Sum(c => c.Ids.Length);
        await host.Sink.WaitForCountAsync(total);

        committed.Select(c => c.Backend).Distinct().Count().Should().BeLessThanOrEqualTo(PgBouncerFixture.TransactionPoolSize,
            "the writers' transactions really ran on shared server connections");
        var deliveries = host.Sink.Deliveries;
        deliveries.Should().HaveCount(total, "each committed row is delivered exactly once here (no faults)");
        deliveries.Select(d => ((Item)d.Row!).Id).Should().BeEquivalentTo(committed.SelectMany(c => c.Ids));
        deliveries.Select(d => d.Position).Should().BeInAscendingOrder("delivery follows commit order");
        var byId = deliveries.ToDictionary(d => ((Item)d.Row!).Id);
        foreach (var (ids, _) in committed)
        {
            var rows = ids.Select(id => byId[id]).ToList();
            rows.Select(r => r.Position).Distinct().Should().ContainSingle("the rows of one transaction share its commit position");
            rows.Select(r => r.EventId).Should().BeInAscendingOrder("rows arrive in statement and row order");
            deliveries.Count(d => d.Position == rows[0].Position).Should().Be(ids.Length, "a transaction's changes arrive together and alone");
        }
    }

    [PgBouncerFact]
    public async Task A_running_consumer_whose_pooler_switches_to_transaction_pooling_reports_the_refusal_as_a_fault_and_recovers_when_switched_back()
    {
        await Db.ExecuteAsync("CREATE TABLE switched_items (id bigint PRIMARY KEY, label text NOT NULL)");
        const string app = "switched-consumer";
        var logs = new LogCapture();
        await using var host = await CreateConsumer(fixture.Bouncer.ConnectionString(PgBouncerFixture.Switchable, app), "switched", "switched_items", logs,
            o => o.ReconnectDelay = TimeSpan.FromMilliseconds(100)).StartAsync();
        await Db.ExecuteAsync("INSERT INTO switched_items VALUES (1, 'x')");
        await host.Sink.WaitForCountAsync(1);

        // An operator switches the pool to transaction mode; the consumer notices when it reconnects.
        await fixture.Bouncer.SetPoolModeAsync(PgBouncerFixture.Switchable, "transaction");
        await FaultHelpers.TerminateAsync(Db.ConnectionString, app);

        var logged = await logs.WaitForAsync(e => e.EventId.Id == 24, "the refusal, logged as a non-transient failure");
        logged.Level.Should().Be(LogLevel.Error);
        logged.Exception.Should().BeOfType<PgEventsException>();
        ShouldNameTheFix(logged.Message);
        var unhealthy = await HealthCheckOf(host).CheckHealthAsync(Context);
        unhealthy.Status.Should().Be(HealthStatus.Unhealthy);
        ShouldNameTheFix(unhealthy.Description!);
        unhealthy.Data.Should().NotContainKey("fault_sqlstate", "the refusal comes from PgEvents, not the server");
        (await host.Consumer.GetStatusAsync()).IsActive.Should().BeFalse();

        await fixture.Bouncer.SetPoolModeAsync(PgBouncerFixture.Switchable, "session");
        await WaitForHealthAsync(host, HealthStatus.Healthy);
        await Db.ExecuteAsync("INSERT INTO switched_items VALUES (2, 'x')");
        await FaultHelpers.WaitForIdAsync(host.Sink, 2);
        (await host.Consumer.GetStatusAsync()).Fault.Should().BeNull();
    }
}
