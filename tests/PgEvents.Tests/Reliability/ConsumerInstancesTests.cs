using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

public sealed class ConsumerInstancesTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static void Configure(PgEventsOptions o)
    {
        o.ConsumerName = "shared";
        o.SchemaName = "instances_log";
        o.StandbyRetryInterval = TimeSpan.FromMilliseconds(100);
        o.BatchSize = 20;
    }

    [Fact]
    public async Task Exactly_one_instance_is_active_and_a_standby_takes_over_when_it_dies_without_gaps_or_reordering()
    {
        await db.ExecuteAsync("CREATE TABLE shared_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var gateA = new InFlightGate { StallId = 300 };
        var gateB = new InFlightGate();
        await using var a = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, "instance-a"),
            b => b.AddHandler<Item, RecordAfterStallHandler>("shared_items"), Configure, services: s => s.AddSingleton(gateA)).StartAsync();
        await WaitForRoleAsync(a, active: true);
        await using var b = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, "instance-b"),
            b => b.AddHandler<Item, RecordAfterStallHandler>("shared_items"), Configure, services: s => s.AddSingleton(gateB)).StartAsync();
        await WaitForRoleAsync(b, active: false);

        var statusA = await a.Consumer.GetStatusAsync();
        var statusB = await b.Consumer.GetStatusAsync();
        (statusA.IsActive, statusA.IsStandby).Should().Be((true, false));
        (statusB.IsActive, statusB.IsStandby).Should().Be((false, true));

        var writer = new SequentialWriter(db.ConnectionString, "shared_items");
        var writing = writer.WriteAsync(1, 600, retry: false);

        // A dies mid-stream: frozen in a handler, its sessions (and so its lease) gone.
        await gateA.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await FaultHelpers.TerminateAsync(db.ConnectionString, "instance-a");
        var killedAt = DateTime.UtcNow;
        await WaitForRoleAsync(b, active: true);
        (DateTime.UtcNow - killedAt).Should().BeLessThan(TimeSpan.FromSeconds(10), "the standby takes over within seconds");

        await writing;
        await b.Sink.WaitForCountAsync(1);
        await WaitForIdAsync(b.Sink, 600);

        var fromA = FaultHelpers.Ids(a.Sink);
        var fromB = FaultHelpers.Ids(b.Sink);
        fromA.Should().NotBeEmpty();
        fromB[0].Should().BeLessThanOrEqualTo(fromA[^1], "the standby resumes at the saved cursor, which is at or before what A handled");
        FaultHelpers.ShouldBeCompleteAndOrdered(fromA.Concat(fromB).ToList(), writer.Committed);
        fromB.Should().BeInAscendingOrder("one instance delivers in order");
    }

    internal static async Task WaitForIdAsync(EventSink sink, long id)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            // Count first, then look: a delivery landing in between is then waited for, not missed.
            var seen = sink.Deliveries.Count;
            if (FaultHelpers.Ids(sink).Contains(id))
            {
                return;
            }

            DateTime.UtcNow.Should().BeBefore(deadline, $"id {id} should be delivered");
            await sink.WaitForCountAsync(seen + 1, TimeSpan.FromSeconds(60));
        }
    }

    private static async Task WaitForRoleAsync(ConsumerHost host, bool active)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var status = await host.Consumer.GetStatusAsync();
            if (active ? status.IsActive : status.IsStandby)
            {
                return;
            }

            DateTime.UtcNow.Should().BeBefore(deadline, active ? "the instance should become active" : "the instance should stand by");
            await Task.Delay(20);
        }
    }
}
