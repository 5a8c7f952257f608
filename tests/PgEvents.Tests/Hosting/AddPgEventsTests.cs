using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Hosting;

public sealed class AddPgEventsTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task A_generic_host_installs_the_triggers_and_delivers_while_it_runs()
    {
        await db.ExecuteAsync("CREATE TABLE hosted_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents(o =>
        {
            o.ConnectionString = db.ConnectionString;
            o.ConsumerName = "hosted";
            o.SchemaName = "hosted_log";
        }).AddHandler<Item, RecordingHandler<Item>>("public.hosted_items");
        using var host = builder.Build();
        var sink = host.Services.GetRequiredService<EventSink>();

        await host.StartAsync();

        // Start returns once the triggers exist: a write right after it must be captured.
        (await new PgEventsSchema(db.DataSource, new PgEventsSchemaOptions { SchemaName = "hosted_log" }).GetTrackedTablesAsync())
            .Should().Contain(new TableName("public", "hosted_items"));
        await db.ExecuteAsync("INSERT INTO hosted_items VALUES (1, 'one'), (2, 'two')");
        await sink.WaitForCountAsync(2);
        await host.StopAsync();

        sink.Deliveries.Select(d => ((Item)d.Row!).Label).Should().Equal("one", "two");
    }

    [Fact]
    public async Task Invalid_options_fail_host_start_with_messages_naming_each_problem()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddPgEvents(o =>
        {
            o.ConsumerName = " ";
            o.BatchSize = 0;
            o.PollInterval = TimeSpan.Zero;
            o.LagSampleInterval = TimeSpan.FromSeconds(-1);
            o.SchemaName = new string('s', 70);
        });
        using var host = builder.Build();

        var start = () => host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>()).Which.Failures.Should().Contain(f => f.Contains("ConnectionString is required"))
            .And.Contain(f => f.Contains("ConsumerName"))
            .And.Contain(f => f.Contains("BatchSize"))
            .And.Contain(f => f.Contains("PollInterval"))
            .And.Contain(f => f.Contains("LagSampleInterval"))
            .And.Contain(f => f.Contains("SchemaName") && f.Contains("63 bytes"));
    }

    [Fact]
    public void A_malformed_table_name_is_refused_when_mapping_the_handler()
    {
        var services = new ServiceCollection();

        var map = () => services.AddPgEvents().AddHandler<Item, RecordingHandler<Item>>("a.b.c");

        map.Should().Throw<ArgumentException>().WithMessage("*'a.b.c' is not a valid table name*");
    }

    [Fact]
    public async Task Calling_AddPgEvents_twice_registers_one_consumer_and_delivers_each_event_once_per_handler()
    {
        await db.ExecuteAsync("CREATE TABLE twice_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var services = new ServiceCollection();
        services.AddSingleton<EventSink>();
        services.AddPgEvents(o => o.ConnectionString = db.ConnectionString)
            .AddHandler<Item, RecordingHandler<Item>>("twice_items");
        services.AddPgEvents(o => { o.ConsumerName = "twice"; o.SchemaName = "twice_log"; })
            .AddHandler<Item, RecordingHandler<Item>>("public.twice_items");
        await using var provider = services.BuildServiceProvider();

        provider.GetServices<IHostedService>().Should().ContainSingle();
        var consumer = provider.GetRequiredService<IEventConsumer>();
        consumer.Name.Should().Be("twice");
        using var stop = new CancellationTokenSource();
        await consumer.InstallAsync();
        var running = consumer.RunAsync(stop.Token);
        await db.ExecuteAsync("INSERT INTO twice_items VALUES (1, 'x')");
        await db.ExecuteAsync("INSERT INTO twice_items VALUES (2, 'y')");
        var sink = provider.GetRequiredService<EventSink>();
        await sink.WaitForCountAsync(2);
        await stop.CancelAsync();
        await running;

        sink.Deliveries.Should().HaveCount(2);
    }

    [Fact]
    public async Task Running_the_same_consumer_instance_twice_at_once_is_refused()
    {
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => { }, o => o.ConsumerName = "single").StartAsync();
        await Eventually.UntilAsync(async () => (await host.Consumer.GetStatusAsync()).IsActive, "the first run should become active");

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var again = () => host.Consumer.RunAsync(timeout.Token);

        await again.Should().ThrowAsync<InvalidOperationException>().WithMessage("*already running*");
    }
}
