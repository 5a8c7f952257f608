using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using PgEvents.UnitTests.Handlers;

namespace PgEvents.UnitTests.Hosting;

/// <summary>Registration and start-up checks that fail, or finish, before any connection is opened.</summary>
public sealed class AddPgEventsTests
{
    // Nothing listens here: a test that opened a connection would fail, not hang.
    private const string Unreachable = "Host=127.0.0.1;Port=1;Database=app;Username=app;Timeout=1";

    private static int Count(IServiceCollection services, Type serviceType, Type? implementation = null) =>
        services.Count(d => d.ServiceType == serviceType && (implementation is null || d.ImplementationType == implementation));

    [Fact]
    public async Task Repeated_calls_register_every_service_once()
    {
        var services = new ServiceCollection();

        services.AddPgEvents(o => o.ConnectionString = Unreachable);
        services.AddPgEvents(o => o.ConsumerName = "orders-sync");
        services.AddPgEvents();

        Count(services, typeof(IHostedService)).Should().Be(1);
        Count(services, typeof(PgEventConsumer)).Should().Be(2, "the keyed consumer and the unkeyed alias of the unnamed one");
        Count(services, typeof(IEventConsumer)).Should().Be(2);
        Count(services, typeof(PgEventsMetrics)).Should().Be(1);
        Count(services, typeof(PgEventsDataSource)).Should().Be(1);
        Count(services, typeof(PgEventsRegistrations)).Should().Be(1);
        Count(services, typeof(IValidateOptions<PgEventsOptions>), typeof(PgEventsOptionsValidator)).Should().Be(1);
        await using var provider = services.BuildServiceProvider();
        provider.GetServices<IHostedService>().Should().ContainSingle().Which.Should().BeOfType<PgEventsHostedService>();
    }

    [Fact]
    public void Repeated_calls_add_to_the_configuration()
    {
        var services = new ServiceCollection();
        services.AddPgEvents(o => o.ConnectionString = Unreachable);
        services.AddPgEvents(o => o.ConsumerName = "orders-sync");
        using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<PgEventsOptions>>().Value;

        (options.ConnectionString, options.ConsumerName).Should().Be((Unreachable, "orders-sync"));
    }

    [Fact]
    public async Task The_consumer_is_one_singleton_behind_both_of_its_service_types_and_building_it_opens_no_connection()
    {
        var services = new ServiceCollection().AddLogging().AddMetrics().AddSingleton<Recorder>();
        services.AddPgEvents(o => o.ConnectionString = Unreachable).AddHandler<Order, OrderHandler>("public.orders");
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        var consumer = provider.GetRequiredService<IEventConsumer>();

        consumer.Should().BeSameAs(provider.GetRequiredService<PgEventConsumer>());
        consumer.Name.Should().Be("default");
        provider.GetServices<IHostedService>().OfType<PgEventsHostedService>().Should().ContainSingle();
    }

    [Fact]
    public async Task The_metrics_come_from_the_host_meter_factory()
    {
        var services = new ServiceCollection().AddMetrics();
        services.AddPgEvents(o => o.ConnectionString = Unreachable);
        await using var provider = services.BuildServiceProvider();

        var metrics = provider.GetRequiredService<PgEventsMetrics>();

        metrics.EventsDelivered.Meter.Scope.Should().BeSameAs(provider.GetRequiredService<IMeterFactory>());
        metrics.Should().BeSameAs(provider.GetRequiredService<PgEventsMetrics>());
    }

    [Fact]
    public async Task A_time_provider_registered_before_is_kept()
    {
        var fake = new FakeTimeProvider();
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(fake);
        services.AddPgEvents(o => o.ConnectionString = Unreachable);
        await using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<TimeProvider>().Should().BeSameAs(fake);
    }

    [Fact]
    public void AddHandler_registers_the_handler_scoped_unless_it_is_registered_already()
    {
        var services = new ServiceCollection();
        services.AddSingleton<AuditHandler>();

        services.AddPgEvents()
            .AddHandler<Order, OrderHandler>("orders")
            .AddHandler<Order, OrderHandler>("orders")
            .AddHandler<Order, AuditHandler>("public.orders");

        services.Should().ContainSingle(d => d.ServiceType == typeof(OrderHandler)).Which.Lifetime.Should().Be(ServiceLifetime.Scoped);
        services.Should().ContainSingle(d => d.ServiceType == typeof(AuditHandler)).Which.Lifetime.Should().Be(ServiceLifetime.Singleton);
    }

    [Fact]
    public void AddHandler_refuses_a_malformed_table_name_when_registering()
    {
        var builder = new ServiceCollection().AddPgEvents();

        var add = () => builder.AddHandler<Order, OrderHandler>("a.b.c");

        add.Should().Throw<ArgumentException>().WithMessage("*'a.b.c' is not a valid table name*");
    }

    [Fact]
    public async Task Host_start_fails_before_connecting_when_the_connection_string_is_missing()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddPgEvents(o => o.ConsumerName = "orders-sync");
        using var host = builder.Build();

        var start = () => host.StartAsync();

        var failure = (await start.Should().ThrowAsync<OptionsValidationException>()).Which;
        failure.OptionsType.Should().Be<PgEventsOptions>();
        failure.Failures.Should().ContainSingle().Which.Should()
            .Be("PgEventsOptions.ConnectionString is required: set it to the database whose tables are captured, or give the consumer a data source (PgEventsBuilder.UseDataSource).");
    }

    [Fact]
    public async Task Host_start_reports_every_bad_option_at_once()
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddPgEvents(o =>
        {
            o.ConnectionString = Unreachable;
            o.SchemaName = "it's";
            o.BatchSize = 0;
        });
        using var host = builder.Build();

        var start = () => host.StartAsync();

        (await start.Should().ThrowAsync<OptionsValidationException>()).Which.Failures.Should().HaveCount(2)
            .And.Contain(f => f.StartsWith("PgEventsOptions.SchemaName is invalid", StringComparison.Ordinal))
            .And.Contain(f => f.StartsWith("PgEventsOptions.BatchSize", StringComparison.Ordinal));
    }

    [Fact]
    public void Reading_invalid_options_outside_a_host_fails_with_the_same_messages()
    {
        var services = new ServiceCollection();
        services.AddPgEvents();
        using var provider = services.BuildServiceProvider();

        var read = () => provider.GetRequiredService<IOptions<PgEventsOptions>>().Value;

        read.Should().Throw<OptionsValidationException>().Which.Failures.Should().ContainSingle(f => f.Contains("ConnectionString is required", StringComparison.Ordinal));
    }
}
