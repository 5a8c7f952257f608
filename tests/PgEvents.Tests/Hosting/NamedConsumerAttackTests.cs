using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;
using PgEvents.Tests.Reliability;

namespace PgEvents.Tests.Hosting;

/// <summary>
/// Attacks on named consumers (AddPgEvents(name)) and on consumers that take their connections from
/// the host's NpgsqlDataSource (UseDataSource). Real server, no mocks. A test whose comment says
/// "Was a break" failed on the code it was written against; it says what broke.
/// </summary>
public sealed class NamedConsumerAttackTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    /// <summary>A pooled data source as an application would register it, recognisable by its application name.</summary>
    private NpgsqlDataSource HostSource(string application, Action<NpgsqlConnectionStringBuilder>? configure = null, Action<NpgsqlDataSourceBuilder>? build = null)
    {
        var connection = new NpgsqlConnectionStringBuilder(db.ConnectionString) { ApplicationName = application, Pooling = true };
        configure?.Invoke(connection);
        var builder = new NpgsqlDataSourceBuilder(connection.ConnectionString);
        build?.Invoke(builder);
        return builder.Build();
    }

    private Task<long> CountAsync(string sql, params (string, object)[] parameters) => db.ScalarAsync<long>(sql, parameters);

    private Task<long> AdvisoryLocksOfAsync(string application) => CountAsync(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = @app AND l.locktype = 'advisory'",
        ("app", application));

    private static async Task<T> ExpectStartFailureAsync<T>(IHost host, TimeSpan within)
        where T : Exception
    {
        var watch = Stopwatch.StartNew();
        Exception? caught = null;
        try
        {
            await host.StartAsync().WaitAsync(within);
        }
        catch (Exception e)
        {
            caught = e;
        }

        if (caught is null)
        {
            await host.StopAsync();
        }

        caught.Should().NotBeNull($"the host was expected to refuse to start (waited {watch.Elapsed})");
        var found = caught is T direct ? direct : (caught as AggregateException)?.InnerExceptions.OfType<T>().FirstOrDefault();
        found.Should().NotBeNull($"expected a {typeof(T).Name}, got {caught}");
        return found!;
    }

    // ------------------------------------------------------------------------------------------
    // Configuration: shared cursors, validation messages, health checks, repeated registrations.
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Was a break: README "Two registrations of one host on the same cursor of the same database are
    /// refused at start". PgEventsHostedService.RefuseSharedCursor skips the check as soon as either
    /// registration uses a host data source, so two named consumers on the same NpgsqlDataSource with
    /// the same ConsumerName start, and one stands by for good, its handlers never called.
    /// </summary>
    [Fact]
    public async Task Two_named_consumers_on_the_same_host_data_source_and_the_same_cursor_are_refused_at_start()
    {
        await db.ExecuteAsync("CREATE TABLE shared_ds_a (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE shared_ds_b (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var source = HostSource("shared-ds");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("a", o => { o.ConsumerName = "shared_cursor"; GenericHosts.QuickRecovery(o); }).UseDataSource(source)
            .AddHandler<Item, RecordingHandler<Item>>("shared_ds_a");
        builder.Services.AddPgEvents("b", o => { o.ConsumerName = "shared_cursor"; GenericHosts.QuickRecovery(o); }).UseDataSource(source)
            .AddHandler<Item, SecondRecordingHandler<Item>>("shared_ds_b");
        using var host = builder.Build();

        var refused = await ExpectStartFailureAsync<PgEventsException>(host, TimeSpan.FromSeconds(30));
        refused.Message.Should().Contain("shared_cursor");
    }

    /// <summary>
    /// Was a break (minor): the same check compares connection strings as raw text, so the same database
    /// spelled with one more keyword (an application name) is taken for another database.
    /// </summary>
    [Fact]
    public async Task Two_registrations_on_the_same_cursor_of_the_same_database_spelled_differently_are_refused_at_start()
    {
        await db.ExecuteAsync("CREATE TABLE shared_cs (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("one", o => { o.ConnectionString = db.ConnectionString; o.ConsumerName = "cs_cursor"; })
            .AddHandler<Item, RecordingHandler<Item>>("shared_cs");
        builder.Services.AddPgEvents("two", o =>
        {
            o.ConnectionString = FaultHelpers.WithApplicationName(db.ConnectionString, "the-other-one");
            o.ConsumerName = "cs_cursor";
        }).AddHandler<Item, SecondRecordingHandler<Item>>("shared_cs");
        using var host = builder.Build();

        var refused = await ExpectStartFailureAsync<PgEventsException>(host, TimeSpan.FromSeconds(30));
        refused.Message.Should().Contain("cs_cursor");
    }

    /// <summary>Held: the unnamed consumer and a named one configured onto its cursor ("default") are refused.</summary>
    [Fact]
    public async Task A_named_consumer_on_the_unnamed_consumers_cursor_is_refused_at_start()
    {
        await db.ExecuteAsync("CREATE TABLE shared_default (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents(o => o.ConnectionString = db.ConnectionString).AddHandler<Item, RecordingHandler<Item>>("shared_default");
        builder.Services.AddPgEvents("default", o => o.ConnectionString = db.ConnectionString).AddHandler<Item, SecondRecordingHandler<Item>>("shared_default");
        using var host = builder.Build();

        var refused = await ExpectStartFailureAsync<PgEventsException>(host, TimeSpan.FromSeconds(30));
        refused.Message.Should().Contain("'default'").And.Contain("without a name");
    }

    /// <summary>
    /// Was a break (usability): with several consumers, a validation failure does not say which consumer
    /// it is about. The message is "PgEventsOptions.ConnectionString is required: ..." for either.
    /// </summary>
    [Fact]
    public async Task A_validation_failure_of_one_named_consumer_names_that_consumer()
    {
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("fine", o => o.ConnectionString = db.ConnectionString).AddHandler<Item, RecordingHandler<Item>>("whatever_fine");
        builder.Services.AddPgEvents("broken", o => o.BatchSize = 0).AddHandler<Item, RecordingHandler<Item>>("whatever_broken");
        using var host = builder.Build();

        Exception? caught = null;
        try
        {
            await host.StartAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception e)
        {
            caught = e;
        }

        caught.Should().NotBeNull();
        caught!.Message.Should().Contain("ConnectionString is required").And.Contain("BatchSize");
        caught.Message.Should().Contain("broken", "with two consumers the operator must learn which one is misconfigured");
    }

    /// <summary>Held: a check for a consumer nobody registered says which AddPgEvents call is missing.</summary>
    [Fact]
    public async Task A_health_check_of_a_misnamed_consumer_reports_unhealthy_naming_the_missing_registration()
    {
        await db.ExecuteAsync("CREATE TABLE health_named (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("jobs", o => { o.ConnectionString = db.ConnectionString; GenericHosts.QuickRecovery(o); }).AddHandler<Item, RecordingHandler<Item>>("health_named");
        builder.Services.AddHealthChecks().AddPgEvents("jobs").AddPgEvents("jbos").AddPgEvents();
        using var host = builder.Build();
        var health = host.Services.GetRequiredService<HealthCheckService>();

        var before = await health.CheckHealthAsync();
        before.Entries["pgevents-jobs"].Status.Should().Be(HealthStatus.Unhealthy, "the host has not started");

        await host.StartAsync();
        var jobs = host.Services.GetRequiredKeyedService<IEventConsumer>("jobs");
        await Eventually.UntilAsync(async () => (await jobs.GetStatusAsync()).IsActive, "jobs becomes active");
        var report = await health.CheckHealthAsync();
        report.Entries["pgevents-jobs"].Status.Should().Be(HealthStatus.Healthy);
        report.Entries["pgevents-jbos"].Status.Should().Be(HealthStatus.Unhealthy);
        report.Entries["pgevents-jbos"].Description.Should().Contain("AddPgEvents(\"jbos\"");
        report.Entries["pgevents"].Status.Should().Be(HealthStatus.Unhealthy);
        report.Entries["pgevents"].Description.Should().Contain("without a name");
        await host.StopAsync();
        (await health.CheckHealthAsync()).Entries["pgevents-jobs"].Status.Should().Be(HealthStatus.Unhealthy, "stopped");
    }

    /// <summary>Held: two libraries calling AddPgEvents("jobs") add to one consumer: one hosted service, both handlers, both configurations.</summary>
    [Fact]
    public async Task Two_libraries_registering_the_same_name_add_to_one_consumer()
    {
        await db.ExecuteAsync("CREATE TABLE lib_one (id bigint PRIMARY KEY, label text NOT NULL); CREATE TABLE lib_two (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("libjobs", o => o.ConnectionString = db.ConnectionString).AddHandler<Item, RecordingHandler<Item>>("lib_one");
        builder.Services.AddPgEvents("libjobs", o => { o.PollInterval = TimeSpan.FromSeconds(7); GenericHosts.QuickRecovery(o); }).AddHandler<Item, SecondRecordingHandler<Item>>("lib_two");
        using var host = builder.Build();
        host.Services.GetServices<IHostedService>().Count(s => s.GetType().Name == "PgEventsHostedService").Should().Be(1);
        host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<PgEventsOptions>>().Get("libjobs").PollInterval.Should().Be(TimeSpan.FromSeconds(7));

        await host.StartAsync();
        await db.ExecuteAsync("INSERT INTO lib_one VALUES (1, 'one'); INSERT INTO lib_two VALUES (2, 'two')");
        var sink = host.Services.GetRequiredService<EventSink>();
        await sink.WaitForCountAsync(2);
        await host.StopAsync();
        sink.Deliveries.Select(d => (d.Handler, d.Table)).Should().BeEquivalentTo([("RecordingHandler`1", "lib_one"), ("second", "lib_two")]);
    }

    /// <summary>Held: UseDataSource() with no NpgsqlDataSource registered, and a multiplexing data source, fail start saying why.</summary>
    [Fact]
    public async Task A_missing_or_multiplexing_host_data_source_fails_start_saying_why()
    {
        await db.ExecuteAsync("CREATE TABLE ds_missing (id bigint PRIMARY KEY, label text NOT NULL)");
        var missing = GenericHosts.NewBuilder();
        missing.Services.AddSingleton<EventSink>();
        missing.Services.AddPgEvents("nods").UseDataSource().AddHandler<Item, RecordingHandler<Item>>("ds_missing");
        using (var host = missing.Build())
        {
            var failure = await ExpectStartFailureAsync<PgEventsException>(host, TimeSpan.FromSeconds(30));
            failure.Message.Should().Contain("registered as 'nods'").And.Contain("none is registered").And.Contain("AddNpgsqlDataSource");
        }

        await using var multiplexing = HostSource("mux", c => c.Multiplexing = true);
        var mux = GenericHosts.NewBuilder();
        mux.Services.AddSingleton<EventSink>();
        mux.Services.AddPgEvents("mux").UseDataSource(multiplexing).AddHandler<Item, RecordingHandler<Item>>("ds_missing");
        using (var host = mux.Build())
        {
            var failure = await ExpectStartFailureAsync<PgEventsException>(host, TimeSpan.FromSeconds(30));
            failure.Message.Should().Contain("Multiplexing").And.Contain("'mux'");
        }
    }

    // ------------------------------------------------------------------------------------------
    // Several consumers, one database.
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Held: the unnamed consumer on a connection string and a named one on the host's pooled data
    /// source map the same table; each gets every event once, in commit order; one of them failing
    /// forever on an event does not hold the other back.
    /// </summary>
    [Fact]
    public async Task The_same_table_in_two_consumers_one_failing_forever_the_other_gets_every_event_in_order()
    {
        await db.ExecuteAsync("CREATE TABLE same_table (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var source = HostSource("same-table");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>().AddSingleton(new FailureSwitch { FailingId = 3 });
        builder.Services.AddPgEvents(o => { o.ConnectionString = db.ConnectionString; o.ConsumerName = "same_unnamed"; GenericHosts.QuickRecovery(o); })
            .AddHandler<Item, SwitchedHandler<Item>>("same_table");
        builder.Services.AddPgEvents("same_named", GenericHosts.QuickRecovery).UseDataSource(source).AddHandler<Item, RecordingHandler<Item>>("same_table");
        builder.Services.AddHealthChecks().AddPgEvents().AddPgEvents("same_named");
        using var host = builder.Build();
        var sink = host.Services.GetRequiredService<EventSink>();
        await host.StartAsync();

        var committed = new List<long>();
        for (var i = 1; i <= 40; i++)
        {
            await db.ExecuteAsync("INSERT INTO same_table VALUES (@id, 'x')", ("id", (long)i));
            committed.Add(i);
        }

        await sink.WaitUntilAsync(d => d.Count(x => x.Handler == "RecordingHandler`1") >= 40, "all 40 to the named consumer");
        await host.Services.GetRequiredService<FailureSwitch>().WaitForAttemptsAsync(5);
        var health = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        await host.StopAsync();

        FaultHelpers.ShouldBeCompleteAndOrdered(
            sink.Deliveries.Where(d => d.Handler == "RecordingHandler`1").Select(d => ((Item)d.Row!).Id).ToList(), committed);
        sink.Deliveries.Where(d => d.Handler == "switched").Select(d => ((Item)d.Row!).Id).Distinct().Should().Equal(1, 2);
        health.Entries["pgevents-same_named"].Status.Should().Be(HealthStatus.Healthy);
        health.Entries["pgevents"].Status.Should().Be(HealthStatus.Degraded);
    }

    /// <summary>Held: two named consumers with their own SchemaName capture the same table into two logs; each gets every event.</summary>
    [Fact]
    public async Task Two_named_consumers_with_their_own_schemas_on_the_same_table_each_get_every_event()
    {
        await db.ExecuteAsync("CREATE TABLE two_schemas (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("schema_a", o => { o.ConnectionString = db.ConnectionString; o.SchemaName = "events_a"; GenericHosts.QuickRecovery(o); })
            .AddHandler<Item, RecordingHandler<Item>>("two_schemas");
        builder.Services.AddPgEvents("schema_b", o => { o.ConnectionString = db.ConnectionString; o.SchemaName = "events_b"; o.NotificationChannel = "events_b"; GenericHosts.QuickRecovery(o); })
            .AddHandler<Item, SecondRecordingHandler<Item>>("two_schemas");
        using var host = builder.Build();
        var sink = host.Services.GetRequiredService<EventSink>();
        await host.StartAsync();

        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
            {
                await db.ExecuteAsync("INSERT INTO two_schemas VALUES (@id, 'x')", ("id", (long)(w * 1000 + i)));
            }
        })).ToArray();
        await Task.WhenAll(writers);
        await db.ExecuteAsync("UPDATE two_schemas SET label = 'y' WHERE id < 10; DELETE FROM two_schemas WHERE id = 1000");

        await Eventually.UntilAsync(
            () => sink.Deliveries.Count(x => x.Handler == "second") >= 111 && sink.Deliveries.Count(x => x.Handler == "RecordingHandler`1") >= 111,
            "both consumers got 100 inserts, 10 updates and 1 delete");
        await host.StopAsync();

        (await CountAsync("SELECT count(*) FROM events_a.events")).Should().Be(111);
        (await CountAsync("SELECT count(*) FROM events_b.events")).Should().Be(111);
        foreach (var handler in new[] { "RecordingHandler`1", "second" })
        {
            var mine = sink.Deliveries.Where(d => d.Handler == handler).ToList();
            mine.Select(d => (d.Kind, ((Item)(d.Row ?? d.OldRow)!).Id, ((Item)(d.Row ?? d.OldRow)!).Label)).Distinct().Should().HaveCount(111, handler);
            mine.Select(d => d.Position).Should().BeInAscendingOrder(handler + " in commit order");
        }
    }

    /// <summary>
    /// Held: two named consumers on the host's pooled data source snapshot the same 3,000 existing rows
    /// (InitialSnapshot) while writers update them; each ends with every row in its final state.
    /// </summary>
    [Fact]
    public async Task Two_named_consumers_with_InitialSnapshot_on_one_pooled_source_each_converge_on_the_table()
    {
        await db.ExecuteAsync("CREATE TABLE snap_named (id bigint PRIMARY KEY, label text NOT NULL); INSERT INTO snap_named SELECT g, 'v0' FROM generate_series(1, 3000) g");
        await using var source = HostSource("snap-named");
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("snap_one", o => { o.InitialSnapshot = true; o.SnapshotChunkSize = 250; GenericHosts.QuickRecovery(o); })
            .UseDataSource(source).AddHandler<Item, RecordingHandler<Item>>("snap_named");
        builder.Services.AddPgEvents("snap_two", o => { o.InitialSnapshot = true; o.SnapshotChunkSize = 250; GenericHosts.QuickRecovery(o); })
            .UseDataSource(source).AddHandler<Item, SecondRecordingHandler<Item>>("snap_named");

        using var host = builder.Build();
        var sink = host.Services.GetRequiredService<EventSink>();
        await host.StartAsync();
        for (var round = 1; round <= 5; round++)
        {
            await db.ExecuteAsync("UPDATE snap_named SET label = @l WHERE id % 7 = @r", ("l", "v" + round), ("r", (long)round));
        }

        await db.ExecuteAsync("INSERT INTO snap_named SELECT g, 'late' FROM generate_series(3001, 3100) g; DELETE FROM snap_named WHERE id <= 50");
        var expected = new Dictionary<long, string>();
        await using (var read = db.DataSource.CreateCommand("SELECT id, label FROM snap_named"))
        await using (var reader = await read.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                expected[reader.GetInt64(0)] = reader.GetString(1);
            }
        }

        Dictionary<long, string> Replica(string consumer)
        {
            var replica = new Dictionary<long, string>();
            foreach (var d in sink.Deliveries.Where(d => d.Handler == consumer))
            {
                var item = (Item)(d.Row ?? d.OldRow)!;
                if (d.Kind == ChangeKind.Delete)
                {
                    replica.Remove(item.Id);
                }
                else
                {
                    replica[item.Id] = item.Label;
                }
            }

            return replica;
        }

        foreach (var name in new[] { "RecordingHandler`1", "second" })
        {
            await Eventually.UntilAsync(
                () => Task.FromResult(Replica(name)),
                r => r.Count == expected.Count && r.All(kv => expected.TryGetValue(kv.Key, out var v) && v == kv.Value),
                r => $"{name} replica has {r.Count} rows, {r.Count(kv => expected.TryGetValue(kv.Key, out var v) && v == kv.Value)} right, table {expected.Count}",
                TimeSpan.FromSeconds(60));
        }

        await host.StopAsync();
    }

    // ------------------------------------------------------------------------------------------
    // Pool sizes.
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Was a break: a pool of 2 started and delivered, but the consumer held both connections for
    /// good (working and LISTEN), so every status read waited for the pool timeout and the health
    /// check reported "cannot reach its database" while it delivered. A pool of 1 failed start after
    /// the pool timeout with Npgsql's message, which did not say what PgEvents needs. Both are now
    /// refused at start, naming the minimum.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task A_pool_smaller_than_the_consumer_needs_is_refused_at_start_naming_the_minimum(int size)
    {
        await db.ExecuteAsync($"CREATE TABLE IF NOT EXISTS pool_small (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var source = HostSource("pool-small", c => { c.MaxPoolSize = size; c.Timeout = 3; });
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("pool_small", GenericHosts.QuickRecovery).UseDataSource(source).AddHandler<Item, RecordingHandler<Item>>("pool_small");
        using var host = builder.Build();

        var failure = await ExpectStartFailureAsync<PgEventsException>(host, TimeSpan.FromSeconds(30));
        failure.Message.Should().Contain($"needs at least {PgEventsDataSource.MinimumPoolSize} connections").And.Contain($"Maximum Pool Size is {size}").And.Contain("'pool_small'");
    }

    /// <summary>
    /// Was a break: the snapshot worker keeps a session connection open for as long as the consumer runs,
    /// although no snapshot was ever requested, so an idle consumer on the host's pool holds three
    /// connections (working, LISTEN, snapshot writer). With Max Pool Size = 3 a handler that uses the
    /// host's own data source (the point of UseDataSource) never gets a connection: every attempt
    /// fails with "The connection pool has been exhausted" and the consumer is blocked for good.
    /// </summary>
    [Fact]
    public async Task An_idle_consumer_leaves_a_pool_of_three_a_connection_for_its_handler()
    {
        await db.ExecuteAsync("CREATE TABLE pool_three (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var source = HostSource("pool-three", c => { c.MaxPoolSize = 3; c.Timeout = 2; });
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>().AddSingleton(source);
        builder.Services.AddPgEvents("pool_three", GenericHosts.QuickRecovery).UseDataSource().AddHandler<Item, DataSourceHandler>("pool_three");
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var consumer = host.Services.GetRequiredKeyedService<IEventConsumer>("pool_three");
            await Eventually.UntilAsync(
                () => CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pool-three' AND datname = current_database()"),
                n => n >= 2, "the consumer's working and LISTEN connections are open");

            // Idle: no snapshot was requested, nothing to deliver. What does the consumer keep open?
            var held = await Eventually.UntilAsync(
                () => CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pool-three' AND datname = current_database()"),
                n => n >= 3, "three backends", TimeSpan.FromSeconds(5)).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : -1);
            await db.ExecuteAsync("INSERT INTO pool_three VALUES (1, 'one'), (2, 'two')");
            var sink = host.Services.GetRequiredService<EventSink>();
            try
            {
                await sink.WaitForCountAsync(2, TimeSpan.FromSeconds(20));
            }
            catch (TimeoutException)
            {
                var queries = new List<string>();
                await using (var list = db.DataSource.CreateCommand("SELECT left(query, 70) FROM pg_stat_activity WHERE application_name = 'pool-three' AND datname = current_database() ORDER BY backend_start"))
                await using (var reader = await list.ExecuteReaderAsync())
                {
                    while (await reader.ReadAsync())
                    {
                        queries.Add(reader.GetString(0).ReplaceLineEndings(" "));
                    }
                }

                var status = await consumer.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(t => t.IsCompletedSuccessfully ? $"blocked: {t.Result.Blocked?.LastError}" : $"status failed: {t.Exception?.GetBaseException().Message}");
                throw new Xunit.Sdk.XunitException(
                    $"The handler never got a connection of the host's pool of 3; the idle consumer alone held {held} backends, last statements: [{string.Join(" | ", queries)}]. {status}");
            }
        }
        finally
        {
            await host.StopAsync();
        }
    }

    // ------------------------------------------------------------------------------------------
    // Session state in the host's pool.
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Was a break: a host that keeps per-connection settings with Npgsql's documented pattern
    /// (UsePhysicalConnectionInitializer + No Reset On Close, so DISCARD ALL does not undo them) finds
    /// them wiped on every connection the consumer used: SessionConnection ends a session with RESET
    /// ALL, which resets the host's own search_path and statement_timeout along with the consumer's
    /// synchronous_commit. The host's next query on such a connection runs in the wrong schema.
    /// </summary>
    [Fact]
    public async Task The_consumer_leaves_the_hosts_own_session_settings_on_the_connections_it_returns()
    {
        await db.ExecuteAsync("CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE app.settings_items (id bigint PRIMARY KEY, label text NOT NULL)");
        const string Init = "SET search_path = app, public; SET statement_timeout = '17s'";
        await using var source = HostSource(
            "host-init",
            c => c.NoResetOnClose = true,
            b => b.UsePhysicalConnectionInitializer(
                c => { using var cmd = new NpgsqlCommand(Init, c); cmd.ExecuteNonQuery(); },
                async c => { await using var cmd = new NpgsqlCommand(Init, c); await cmd.ExecuteNonQueryAsync(); }));
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("host_init", GenericHosts.QuickRecovery).UseDataSource(source).AddHandler<Item, RecordingHandler<Item>>("app.settings_items");
        using (var host = builder.Build())
        {
            await host.StartAsync();
            await db.ExecuteAsync("INSERT INTO app.settings_items VALUES (1, 'one')");
            await host.Services.GetRequiredService<EventSink>().WaitForCountAsync(1);
            await host.StopAsync();
        }

        var idle = (int)await CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'host-init'");
        idle.Should().BePositive();
        var seen = new List<string>();
        var borrowed = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < idle; i++)
            {
                var pooled = await source.OpenConnectionAsync();
                borrowed.Add(pooled);
                await using var show = new NpgsqlCommand("SELECT current_setting('search_path') || ' | ' || current_setting('statement_timeout') || ' | ' || current_setting('synchronous_commit')", pooled);
                seen.Add((string)(await show.ExecuteScalarAsync())!);
            }
        }
        finally
        {
            foreach (var pooled in borrowed)
            {
                await pooled.DisposeAsync();
            }
        }

        seen.Should().OnlyContain(s => s.StartsWith("app, public | 17s | "), "the host's own settings survive the consumer's use of its connections");
    }

    /// <summary>
    /// Held: stopping the host while a named consumer's handler runs a query in the consumer's own
    /// transaction (cancelled mid-statement, leaving an aborted transaction on the lease connection)
    /// returns no lease, listen or setting to the pool, and a restart delivers the event again.
    /// </summary>
    [Fact]
    public async Task Stopping_mid_statement_in_the_consumers_transaction_leaves_the_pool_clean_and_redelivers()
    {
        await db.ExecuteAsync("CREATE TABLE stop_mid (id bigint PRIMARY KEY, label text NOT NULL)");
        var database = new NpgsqlConnectionStringBuilder(db.ConnectionString).Database!;
        await db.ExecuteAsync($"ALTER DATABASE \"{database}\" SET synchronous_commit = on");
        await using var source = HostSource("stop-mid", c => c.NoResetOnClose = true);
        var gate = new SleepGate();

        IHost Build()
        {
            var builder = GenericHosts.NewBuilder();
            builder.Services.AddSingleton<EventSink>().AddSingleton(gate);
            builder.Services.AddPgEvents("stop_mid", GenericHosts.QuickRecovery).UseDataSource(source).AddHandler<Item, SleepingInTransactionHandler>("stop_mid");
            return builder.Build();
        }

        using (var first = Build())
        {
            await first.StartAsync();
            await db.ExecuteAsync("INSERT INTO stop_mid VALUES (1, 'one'); INSERT INTO stop_mid VALUES (2, 'sleep')");
            await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await Eventually.UntilAsync(
                () => CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stop-mid' AND query LIKE '%pg_sleep%' AND state = 'active'"),
                n => n == 1, "the handler's statement runs");
            var watch = Stopwatch.StartNew();
            await first.StopAsync().WaitAsync(TimeSpan.FromSeconds(20));
            watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
            first.Services.GetRequiredService<EventSink>().Deliveries.Select(d => ((Item)d.Row!).Id).Should().Equal(1L);
        }

        (await AdvisoryLocksOfAsync("stop-mid")).Should().Be(0);
        var idle = (int)await CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stop-mid'");
        var borrowed = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < idle; i++)
            {
                var pooled = await source.OpenConnectionAsync();
                borrowed.Add(pooled);
                await using var show = new NpgsqlCommand("SELECT current_setting('synchronous_commit') || ' ' || (SELECT count(*) FROM pg_listening_channels())", pooled);
                ((string)(await show.ExecuteScalarAsync())!).Should().Be("on 0");
            }
        }
        finally
        {
            foreach (var pooled in borrowed)
            {
                await pooled.DisposeAsync();
            }
        }

        gate.Sleep = false;
        using var second = Build();
        await second.StartAsync();
        var sink = second.Services.GetRequiredService<EventSink>();
        await sink.WaitForCountAsync(1);
        await second.StopAsync();
        sink.Deliveries.Select(d => ((Item)d.Row!).Id).Should().Contain(2L, "the event in flight when the host stopped is delivered again");
    }

    // ------------------------------------------------------------------------------------------
    // Lost connections of a pooled-source consumer; two instances on pooled sources.
    // ------------------------------------------------------------------------------------------

    /// <summary>
    /// Held: the LISTEN backend of a pooled-source consumer is terminated; with a poll interval of
    /// five minutes, a later insert is delivered within seconds only if the consumer noticed and
    /// listens again. The dead connection does not come back out of the host's pool.
    /// </summary>
    [Fact]
    public async Task A_terminated_LISTEN_connection_of_a_pooled_consumer_is_replaced_and_does_not_poison_the_pool()
    {
        await db.ExecuteAsync("CREATE TABLE kill_listen (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var source = HostSource("kill-listen", c => c.NoResetOnClose = true);
        var logs = new LogCapture();
        var builder = GenericHosts.NewBuilder();
        builder.Services.AddLogging(l => l.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents("kill_listen", o => { GenericHosts.QuickRecovery(o); o.PollInterval = TimeSpan.FromMinutes(5); o.KeepAliveInterval = TimeSpan.FromMinutes(5); })
            .UseDataSource(source).AddHandler<Item, RecordingHandler<Item>>("kill_listen");
        using var host = builder.Build();
        var sink = host.Services.GetRequiredService<EventSink>();
        await host.StartAsync();
        await db.ExecuteAsync("INSERT INTO kill_listen VALUES (1, 'one')");
        await sink.WaitForCountAsync(1);

        var listeners = await Eventually.UntilAsync(
            () => CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kill-listen' AND query LIKE 'LISTEN%'"),
            n => n == 1, "one LISTEN backend");
        (await CountAsync(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'kill-listen' AND query LIKE 'LISTEN%'")).Should().Be(listeners);
        await logs.WaitForAsync(e => e.EventId.Id == 16, "the consumer reconnected", TimeSpan.FromSeconds(30));
        await Eventually.UntilAsync(
            () => CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kill-listen' AND query LIKE 'LISTEN%'"),
            n => n == 1, "it listens again");

        var watch = Stopwatch.StartNew();
        await db.ExecuteAsync("INSERT INTO kill_listen VALUES (2, 'two')");
        await sink.WaitUntilAsync(d => d.Any(x => ((Item)x.Row!).Id == 2), "row 2 woken by a notification", TimeSpan.FromSeconds(20));
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
        await host.StopAsync();

        (await AdvisoryLocksOfAsync("kill-listen")).Should().Be(0);
        var idle = (int)await CountAsync("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kill-listen'");
        var borrowed = new List<NpgsqlConnection>();
        try
        {
            for (var i = 0; i < idle + 1; i++)
            {
                var pooled = await source.OpenConnectionAsync();
                borrowed.Add(pooled);
                await using var ping = new NpgsqlCommand("SELECT 1", pooled);
                (await ping.ExecuteScalarAsync()).Should().Be(1, "no dead connection is handed to the host");
            }
        }
        finally
        {
            foreach (var pooled in borrowed)
            {
                await pooled.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Held: two hosts, each with a consumer of the same name on its own pooled data source (No Reset
    /// On Close). Writers insert throughout; the active instance's lease backend is terminated, then
    /// the active host is stopped, then the other. Every committed row arrives in commit order, and
    /// never do two backends hold the lease.
    /// </summary>
    [Fact]
    public async Task Two_hosts_on_pooled_sources_take_over_from_each_other_without_skipping_and_with_one_lease()
    {
        await db.ExecuteAsync("CREATE TABLE takeover_pooled (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var sourceA = HostSource("takeover-a", c => c.NoResetOnClose = true);
        await using var sourceB = HostSource("takeover-b", c => c.NoResetOnClose = true);
        var sink = new EventSink();

        IHost Build(NpgsqlDataSource source)
        {
            var builder = GenericHosts.NewBuilder();
            builder.Services.AddSingleton(sink);
            builder.Services.AddPgEvents("takeover", GenericHosts.QuickRecovery).UseDataSource(source).AddHandler<Item, RecordingHandler<Item>>("takeover_pooled");
            return builder.Build();
        }

        using var hostA = Build(sourceA);
        using var hostB = Build(sourceB);
        await hostA.StartAsync();
        var a = hostA.Services.GetRequiredKeyedService<IEventConsumer>("takeover");
        await Eventually.UntilAsync(async () => (await a.GetStatusAsync()).IsActive, "A is active");
        await hostB.StartAsync();
        var b = hostB.Services.GetRequiredKeyedService<IEventConsumer>("takeover");
        await Eventually.UntilAsync(async () => (await b.GetStatusAsync()).IsStandby, "B stands by");

        using var stopWriting = new CancellationTokenSource();
        var committed = new List<long>();
        var maxHolders = 0;
        var writer = Task.Run(async () =>
        {
            for (long id = 1; !stopWriting.IsCancellationRequested; id++)
            {
                await db.ExecuteAsync("INSERT INTO takeover_pooled VALUES (@id, 'x')", ("id", id));
                lock (committed)
                {
                    committed.Add(id);
                }

                await Task.Delay(5);
            }
        });
        var watcher = Task.Run(async () =>
        {
            while (!stopWriting.IsCancellationRequested)
            {
                var holders = await FaultHelpers.LeaseHoldersAsync(db, "pgevents", "takeover");
                maxHolders = Math.Max(maxHolders, holders.Count);
                await Task.Delay(5);
            }
        });

        async Task<string> ActiveApplicationAsync() => (await Eventually.UntilAsync(
            () => FaultHelpers.LeaseHoldersAsync(db, "pgevents", "takeover"), h => h.Count == 1, "one lease holder")).Single().Application;

        await sink.WaitUntilAsync(d => d.Count >= 50, "50 deliveries");
        (await ActiveApplicationAsync()).Should().Be("takeover-a");
        await db.ExecuteAsync("SELECT pg_terminate_backend(pid) FROM pg_locks l WHERE l.pid IN (SELECT pid FROM pg_stat_activity WHERE application_name = 'takeover-a') AND l.locktype = 'advisory'");
        var count = sink.Deliveries.Count;
        await sink.WaitUntilAsync(d => d.Count >= count + 50, "50 more deliveries after the lease backend was killed");
        var active = await ActiveApplicationAsync();
        await (active == "takeover-a" ? hostA : hostB).StopAsync();
        count = sink.Deliveries.Count;
        await sink.WaitUntilAsync(d => d.Count >= count + 50, "50 more deliveries after the active host stopped");
        (await ActiveApplicationAsync()).Should().Be(active == "takeover-a" ? "takeover-b" : "takeover-a");

        await stopWriting.CancelAsync();
        await writer.ContinueWith(_ => { });
        await watcher.ContinueWith(_ => { });
        long last;
        lock (committed)
        {
            last = committed[^1];
        }

        await sink.WaitUntilAsync(d => d.Any(x => ((Item)x.Row!).Id == last), "the last committed row");
        await hostA.StopAsync();
        await hostB.StopAsync();

        maxHolders.Should().Be(1, "a consumer's lease is held by at most one instance");
        FaultHelpers.ShouldBeCompleteAndOrdered(FaultHelpers.Ids(sink), committed);
        (await AdvisoryLocksOfAsync("takeover-a")).Should().Be(0);
        (await AdvisoryLocksOfAsync("takeover-b")).Should().Be(0);
    }

    /// <summary>
    /// Held: a host data source through PgBouncer in session mode (Npgsql pooling on top, No Reset On
    /// Close): stopping the consumer releases its lease on the server connection PgBouncer keeps, so a
    /// second instance on the same source takes over at once; through transaction pooling the host's
    /// data source is refused at start with the session-check message.
    /// </summary>
    [PgBouncerFact]
    public async Task Through_PgBouncer_a_session_pooled_host_source_hands_the_lease_on_and_a_transaction_pooled_one_is_refused()
    {
        await db.ExecuteAsync("CREATE TABLE bouncer_items (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var bouncer = await PgBouncer.StartAsync(db.ConnectionString, new Dictionary<string, (string, int)>
        {
            ["session_db"] = ("session", 10),
            ["tx_db"] = ("transaction", 3),
        });
        await using var session = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(bouncer.ConnectionString("session_db", "bouncer-host")) { NoResetOnClose = true }.ConnectionString);

        IHost Build(NpgsqlDataSource source, string name)
        {
            var builder = GenericHosts.NewBuilder();
            builder.Services.AddSingleton<EventSink>();
            builder.Services.AddPgEvents(name, GenericHosts.QuickRecovery).UseDataSource(source).AddHandler<Item, RecordingHandler<Item>>("bouncer_items");
            return builder.Build();
        }

        using (var first = Build(session, "bouncer"))
        {
            await first.StartAsync();
            await db.ExecuteAsync("INSERT INTO bouncer_items VALUES (1, 'one')");
            await first.Services.GetRequiredService<EventSink>().WaitForCountAsync(1);
            await first.StopAsync();
        }

        (await FaultHelpers.LeaseHoldersAsync(db, "pgevents", "bouncer")).Should().BeEmpty("the lease went with the consumer although PgBouncer keeps the server connection");
        using (var second = Build(session, "bouncer"))
        {
            await second.StartAsync();
            var consumer = second.Services.GetRequiredKeyedService<IEventConsumer>("bouncer");
            await Eventually.UntilAsync(async () => (await consumer.GetStatusAsync()).IsActive, "the second instance is active at once", TimeSpan.FromSeconds(10));
            await db.ExecuteAsync("INSERT INTO bouncer_items VALUES (2, 'two')");
            var sink = second.Services.GetRequiredService<EventSink>();
            await sink.WaitForCountAsync(1);
            await second.StopAsync();
            sink.Deliveries.Select(d => ((Item)d.Row!).Id).Should().Equal(2L);
        }

        await using var transaction = NpgsqlDataSource.Create(bouncer.ConnectionString("tx_db", "bouncer-tx"));
        using var refused = Build(transaction, "bouncer_tx");
        var failure = await ExpectStartFailureAsync<PgEventsException>(refused, TimeSpan.FromSeconds(30));
        failure.Message.Should().Contain("pool_mode = session");
    }

    /// <summary>Uses the host's own data source in the handler, as an application does.</summary>
    public sealed class DataSourceHandler(EventSink sink, NpgsqlDataSource source) : IRowHandler<Item>
    {
        public async Task HandleAsync(RowChange<Item> change, CancellationToken cancellationToken)
        {
            await using var connection = await source.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync(cancellationToken);
            sink.Record("ds", change);
        }
    }

    public sealed class SleepGate
    {
        private volatile bool _sleep = true;

        public bool Sleep { get => _sleep; set => _sleep = value; }

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Runs pg_sleep in the consumer's transaction for the row labelled 'sleep' while the gate says so.</summary>
    public sealed class SleepingInTransactionHandler(EventSink sink, SleepGate gate) : IRowHandler<Item>
    {
        public async Task HandleAsync(RowChange<Item> change, CancellationToken cancellationToken)
        {
            if (change.Row!.Label == "sleep" && gate.Sleep)
            {
                var transaction = await change.GetTransactionAsync(cancellationToken);
                await using var command = new NpgsqlCommand("SET LOCAL synchronous_commit = off; SELECT pg_sleep(60)", transaction.Connection, transaction);
                gate.Entered.TrySetResult();
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            sink.Record("sleeper", change);
        }
    }
}
