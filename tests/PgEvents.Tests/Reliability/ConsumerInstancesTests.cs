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
        var gateA = new HandlerGate { HoldId = 300, RecordBeforeHolding = true };
        var gateB = new HandlerGate { RecordBeforeHolding = true };
        await using var a = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, "instance-a"),
            b => b.AddHandler<Item, GatedHandler<Item>>("shared_items"), Configure, services: s => s.AddSingleton(gateA)).StartAsync();
        await WaitForRoleAsync(a, active: true);
        await using var b = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, "instance-b"),
            b => b.AddHandler<Item, GatedHandler<Item>>("shared_items"), Configure, services: s => s.AddSingleton(gateB)).StartAsync();
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
        await WaitForRoleAsync(b, active: true);

        // The takeover came from A's lost sessions, not from A giving up: A is still frozen in its
        // handler (its run never ended), yet the lease is B's alone.
        a.Running.IsCompleted.Should().BeFalse("A never stopped; it only lost its sessions");
        (await FaultHelpers.LeaseHoldersAsync(db, "instances_log", "shared")).Should().ContainSingle()
            .Which.Application.Should().Be("instance-b", "the standby holds the lease A's sessions took with them");

        await writing;
        await b.Sink.WaitForCountAsync(1);
        await FaultHelpers.WaitForIdAsync(b.Sink, 600);

        var fromA = FaultHelpers.Ids(a.Sink);
        var fromB = FaultHelpers.Ids(b.Sink);
        fromA.Should().NotBeEmpty();
        fromB[0].Should().BeLessThanOrEqualTo(fromA[^1], "the standby resumes at the saved cursor, which is at or before what A handled");
        FaultHelpers.ShouldBeCompleteAndOrdered(fromA.Concat(fromB).ToList(), writer.Committed);
        fromB.Should().BeInAscendingOrder("one instance delivers in order");
    }

    private static Task WaitForRoleAsync(ConsumerHost host, bool active) =>
        Eventually.UntilAsync(async () => await host.Consumer.GetStatusAsync() is var status && (active ? status.IsActive : status.IsStandby),
            active ? "the instance should become active" : "the instance should stand by");
}
