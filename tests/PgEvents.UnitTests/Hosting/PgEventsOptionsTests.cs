using Microsoft.Extensions.Configuration;

namespace PgEvents.UnitTests.Hosting;

public sealed class PgEventsOptionsTests
{
    [Fact]
    public void Retry_and_retention_start_with_the_documented_defaults()
    {
        var options = new PgEventsOptions();

        options.Retry.Should().BeEquivalentTo(new
        {
            InitialDelay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(30),
            BackoffMultiplier = 2.0,
            MaxAttempts = 5,
        });
        options.Retention.Should().BeEquivalentTo(new
        {
            Age = (TimeSpan?)TimeSpan.FromDays(7),
            Interval = TimeSpan.FromMinutes(5),
            BatchSize = 1000,
        });
    }

    [Fact]
    public void Retry_and_retention_bind_from_configuration_sections_although_they_have_no_setter()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["PgEvents:ConsumerName"] = "orders-sync",
            ["PgEvents:Retry:InitialDelay"] = "00:00:01",
            ["PgEvents:Retry:MaxAttempts"] = "3",
            ["PgEvents:Retention:Interval"] = "00:01:00",
            ["PgEvents:Retention:BatchSize"] = "200",
        }).Build();
        var options = new PgEventsOptions();

        configuration.GetSection("PgEvents").Bind(options);

        options.ConsumerName.Should().Be("orders-sync");
        (options.Retry.InitialDelay, options.Retry.MaxAttempts).Should().Be((TimeSpan.FromSeconds(1), 3));
        options.Retry.MaxDelay.Should().Be(TimeSpan.FromSeconds(30), "what the section leaves out keeps its default");
        (options.Retention.Interval, options.Retention.BatchSize).Should().Be((TimeSpan.FromMinutes(1), 200));
        options.Retention.Age.Should().Be(TimeSpan.FromDays(7));
    }
}
