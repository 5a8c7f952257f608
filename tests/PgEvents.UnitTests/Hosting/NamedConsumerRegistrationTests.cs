using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using PgEvents.UnitTests.Handlers;

namespace PgEvents.UnitTests.Hosting;

/// <summary>Several consumers in one host: each has its own options, handlers, services and health check; none connects here.</summary>
public sealed class NamedConsumerRegistrationTests
{
    private const string Unreachable = "Host=127.0.0.1;Port=1;Database=app;Username=app;Timeout=1";

    private static ServiceProvider TwoConsumers(Action<IServiceCollection>? more = null)
    {
        var services = new ServiceCollection().AddLogging().AddMetrics().AddSingleton<Recorder>();
        services.AddPgEvents("sync", o => o.ConnectionString = Unreachable).AddHandler<Order, OrderHandler>("orders");
        services.AddPgEvents("jobs", o =>
        {
            o.ConnectionString = Unreachable;
            o.BatchSize = 7;
        }).AddHandler<Customer, AuditHandler>("customers");
        more?.Invoke(services);
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    [Fact]
    public async Task Each_name_has_its_own_consumer_options_handlers_and_hosted_service()
    {
        await using var provider = TwoConsumers();

        var sync = provider.GetRequiredKeyedService<IEventConsumer>("sync");
        var jobs = provider.GetRequiredKeyedService<IEventConsumer>("jobs");

        sync.Should().NotBeSameAs(jobs);
        (sync.Name, jobs.Name).Should().Be(("sync", "jobs"), "the cursor name defaults to the registration name");
        ((PgEventConsumer)sync).Tables.Should().Equal(TableName.Parse("orders"));
        ((PgEventConsumer)jobs).Tables.Should().Equal(TableName.Parse("customers"));
        var monitor = provider.GetRequiredService<IOptionsMonitor<PgEventsOptions>>();
        (monitor.Get("sync").BatchSize, monitor.Get("jobs").BatchSize).Should().Be((500, 7));
        provider.GetServices<IHostedService>().Should().HaveCount(2).And.AllBeOfType<PgEventsHostedService>();
        provider.GetService<IEventConsumer>().Should().BeNull("no consumer was registered without a name");
        provider.GetRequiredKeyedService<PgEventsDataSource>("sync").Should().NotBeSameAs(provider.GetRequiredKeyedService<PgEventsDataSource>("jobs"));
    }

    [Fact]
    public async Task A_named_and_the_unnamed_consumer_live_side_by_side()
    {
        var services = new ServiceCollection().AddLogging().AddSingleton<Recorder>();
        services.AddPgEvents(o => o.ConnectionString = Unreachable).AddHandler<Order, OrderHandler>("orders");
        services.AddPgEvents("jobs", o => o.ConnectionString = Unreachable).AddHandler<Customer, AuditHandler>("customers");
        await using var provider = services.BuildServiceProvider();

        var unnamed = provider.GetRequiredService<IEventConsumer>();

        unnamed.Name.Should().Be("default");
        unnamed.Should().BeSameAs(provider.GetRequiredKeyedService<IEventConsumer>(Options.DefaultName));
        provider.GetRequiredKeyedService<IEventConsumer>("jobs").Name.Should().Be("jobs");
        ((PgEventConsumer)unnamed).Tables.Should().Equal(TableName.Parse("orders"));
    }

    [Fact]
    public async Task Repeated_calls_with_one_name_add_to_that_consumer_only()
    {
        var services = new ServiceCollection().AddLogging().AddSingleton<Recorder>();
        services.AddPgEvents("jobs", o => o.ConnectionString = Unreachable).AddHandler<Order, OrderHandler>("orders");
        services.AddPgEvents("jobs", o => o.ConsumerName = "jobs-v2").AddHandler<Customer, AuditHandler>("customers");
        await using var provider = services.BuildServiceProvider();

        var jobs = (PgEventConsumer)provider.GetRequiredKeyedService<IEventConsumer>("jobs");

        jobs.Name.Should().Be("jobs-v2", "the caller's configuration runs after the default taken from the name");
        jobs.Tables.Should().BeEquivalentTo([TableName.Parse("orders"), TableName.Parse("customers")]);
        provider.GetServices<IHostedService>().Should().ContainSingle();
    }

    [Fact]
    public async Task Batch_handlers_map_exact_table_names_to_their_own_consumer()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddPgEvents("sync", o => o.ConnectionString = Unreachable)
            .AddBatchHandler<BatchDispatchTests.RecordingBatchHandler>(new TableName("sales", "Order Items"), new TableName("public", "weird\"name"));
        services.AddPgEvents("jobs", o => o.ConnectionString = Unreachable).AddBatchHandler<BatchDispatchTests.RecordingBatchHandler>("customers");
        await using var provider = services.BuildServiceProvider();

        ((PgEventConsumer)provider.GetRequiredKeyedService<IEventConsumer>("sync")).Tables
            .Should().BeEquivalentTo([new TableName("sales", "Order Items"), new TableName("public", "weird\"name")]);
        ((PgEventConsumer)provider.GetRequiredKeyedService<IEventConsumer>("jobs")).Tables.Should().Equal(TableName.Parse("customers"));
    }

    [Fact]
    public async Task A_cursor_name_from_configuration_wins_over_the_registration_name_whatever_the_order_of_the_calls()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PgEvents:Jobs:ConsumerName"] = "jobs-v2",
            ["PgEvents:Jobs:ConnectionString"] = Unreachable,
            ["PgEvents:Jobs:Retry:MaxAttempts"] = "3",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.Configure<PgEventsOptions>("jobs", configuration.GetSection("PgEvents:Jobs"));
        services.AddPgEvents("jobs");
        services.AddPgEvents("sync", o => o.ConnectionString = Unreachable);
        await using var provider = services.BuildServiceProvider();

        var monitor = provider.GetRequiredService<IOptionsMonitor<PgEventsOptions>>();

        (monitor.Get("jobs").ConsumerName, monitor.Get("jobs").Retry.MaxAttempts).Should().Be(("jobs-v2", 3));
        monitor.Get("sync").ConsumerName.Should().Be("sync");
    }

    [Fact]
    public void An_empty_name_is_refused()
    {
        var add = () => new ServiceCollection().AddPgEvents(" ");

        add.Should().Throw<ArgumentException>();
    }

    [Fact]
    public async Task Host_start_names_the_consumer_whose_options_are_bad_and_validates_each()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddPgEvents("sync", o => o.ConnectionString = Unreachable);
        builder.Services.AddPgEvents("jobs", o => o.BatchSize = 0);
        using var host = builder.Build();

        var start = () => host.StartAsync();

        var failure = (await start.Should().ThrowAsync<OptionsValidationException>()).Which;
        failure.OptionsName.Should().Be("jobs");
        failure.Failures.Should().HaveCount(2)
            .And.Contain(f => f.StartsWith("PgEvents consumer registered as 'jobs': PgEventsOptions.ConnectionString is required", StringComparison.Ordinal))
            .And.Contain(f => f.StartsWith("PgEvents consumer registered as 'jobs': PgEventsOptions.BatchSize", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Two_registrations_on_one_cursor_of_one_database_are_refused_at_start()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddPgEvents("sync", o => o.ConnectionString = Unreachable);
        builder.Services.AddPgEvents("copy", o =>
        {
            o.ConnectionString = Unreachable;
            o.ConsumerName = "sync";
        });
        using var host = builder.Build();

        var start = () => host.StartAsync();

        (await start.Should().ThrowAsync<PgEventsException>()).Which.Message.Should()
            .Contain("registered as 'sync'").And.Contain("registered as 'copy'").And.Contain("cursor 'sync'");
    }

    [Fact]
    public async Task A_data_source_from_the_host_replaces_the_connection_string()
    {
        await using var hostSource = NpgsqlDataSource.Create(Unreachable);
        var services = new ServiceCollection().AddLogging().AddSingleton(hostSource);
        services.AddPgEvents("jobs").UseDataSource();
        await using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IOptionsMonitor<PgEventsOptions>>().Get("jobs").ConnectionString.Should().BeNull();
        provider.GetRequiredKeyedService<PgEventsDataSource>("jobs").DataSource.Should().BeSameAs(hostSource);
        await provider.DisposeAsync();

        // The host owns it: still usable after the consumer's container is gone.
        hostSource.CreateConnection().Should().NotBeNull();
        var command = () => hostSource.CreateCommand("SELECT 1");
        command.Should().NotThrow();
    }

    [Fact]
    public async Task ConfigureDataSource_beside_a_data_source_from_the_host_is_refused()
    {
        await using var hostSource = NpgsqlDataSource.Create(Unreachable);
        var services = new ServiceCollection();
        services.AddPgEvents("jobs", o => o.ConfigureDataSource = _ => { }).UseDataSource(hostSource);
        await using var provider = services.BuildServiceProvider();

        var read = () => provider.GetRequiredService<IOptionsMonitor<PgEventsOptions>>().Get("jobs");

        read.Should().Throw<OptionsValidationException>().Which.Failures.Should().ContainSingle()
            .Which.Should().Contain("ConfigureDataSource does not apply");
    }

    [Fact]
    public async Task A_multiplexing_data_source_is_refused_naming_the_consumer()
    {
        await using var hostSource = NpgsqlDataSource.Create(Unreachable + ";Multiplexing=true");
        var services = new ServiceCollection();
        services.AddPgEvents("jobs").UseDataSource(hostSource);
        await using var provider = services.BuildServiceProvider();

        var build = () => provider.GetRequiredKeyedService<PgEventsDataSource>("jobs");

        build.Should().Throw<PgEventsException>().WithMessage("*'jobs'*Multiplexing*");
    }

    [Fact]
    public async Task The_health_check_extension_adds_one_check_per_consumer_with_its_own_name()
    {
        await using var provider = TwoConsumers(services => services.AddHealthChecks().AddPgEvents("sync").AddPgEvents("jobs", tags: ["ready"]));

        var registrations = provider.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations;

        registrations.Select(r => r.Name).Should().Equal("pgevents-sync", "pgevents-jobs");
        registrations.Last().Tags.Should().Equal("ready");
        var check = registrations.First().Factory(provider);
        check.Should().BeOfType<PgEventsHealthCheck>();
    }

    [Fact]
    public async Task A_health_check_of_an_unregistered_consumer_reports_what_to_register()
    {
        await using var provider = TwoConsumers(services => services.AddHealthChecks().AddPgEvents("sycn"));
        var registration = provider.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations.Single();

        var result = await registration.Factory(provider).CheckHealthAsync(new HealthCheckContext { Registration = registration });

        result.Status.Should().Be(HealthStatus.Unhealthy);
        result.Description.Should().Be("No PgEvents consumer is registered as 'sycn': call services.AddPgEvents(\"sycn\", ...).");
    }
}
