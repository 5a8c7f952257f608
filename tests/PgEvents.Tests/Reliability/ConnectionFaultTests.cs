using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

public sealed class ConnectionFaultTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task Killing_the_consumer_connections_mid_stream_loses_nothing_and_the_consumer_reconnects_alone()
    {
        await db.ExecuteAsync("CREATE TABLE killed_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var app = "killed-consumer";
        await using var host = ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, app),
            b => b.AddHandler<Item, RecordingHandler<Item>>("killed_items"),
            o => { o.ConsumerName = "killed"; o.ReconnectDelay = TimeSpan.FromMilliseconds(20); o.BatchSize = 50; });
        using var reconnects = new MetricCollector<long>(host.Services.GetRequiredService<IMeterFactory>(), "PgEvents", "pgevents.reconnects");
        await host.StartAsync();
        var writer = new SequentialWriter(db.ConnectionString, "killed_items");

        var writing = writer.WriteAsync(1, 1500, retry: false);
        var kills = 0L;
        while (!writing.IsCompleted)
        {
            await Task.WhenAny(host.Sink.WaitForCountAsync(host.Sink.Deliveries.Count + 100), writing);
            kills += await FaultHelpers.TerminateAsync(db.ConnectionString, app);
        }

        await writing;
        await host.Sink.WaitForCountAsync(1500);
        kills.Should().BeGreaterThan(0);
        reconnects.GetMeasurementSnapshot().Sum(m => m.Value).Should().BeGreaterThan(0, "the consumer must have noticed and reconnected");

        await FaultHelpers.WaitForIdAsync(host.Sink, 1500);
        FaultHelpers.ShouldBeCompleteAndOrdered(FaultHelpers.Ids(host.Sink), writer.Committed);
        (await host.Consumer.GetStatusAsync()).IsActive.Should().BeTrue();
    }

    [Fact]
    public async Task A_crash_between_handler_and_cursor_update_delivers_the_event_again_and_never_skips_it()
    {
        await db.ExecuteAsync("CREATE TABLE crash_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var gate = new HandlerGate { HoldId = 7, RecordBeforeHolding = true };
        const string crashingApp = "crashing-instance";

        // First "process": handles 1..7, then freezes inside the handler of 7 and loses its sessions,
        // as if it crashed after its handler ran but before the cursor was saved.
        await using var crashed = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, crashingApp),
            b => b.AddHandler<Item, GatedHandler<Item>>("crash_items"),
            o => { o.ConsumerName = "crash"; o.BatchSize = 100; }, services: s => s.AddSingleton(gate)).StartAsync();
        await db.ExecuteAsync("INSERT INTO crash_items SELECT g, 'x' FROM generate_series(1, 10) g");
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await FaultHelpers.TerminateAsync(db.ConnectionString, crashingApp);
        FaultHelpers.Ids(crashed.Sink).Should().Equal(1, 2, 3, 4, 5, 6, 7);

        // The next process resumes from the saved cursor: the batch was never acknowledged.
        await using var recovered = await ConsumerHost.Create(db.ConnectionString,
            b => b.AddHandler<Item, RecordingHandler<Item>>("crash_items"), o => { o.ConsumerName = "crash"; o.BatchSize = 100; }).StartAsync();
        await recovered.Sink.WaitForCountAsync(10);

        FaultHelpers.Ids(recovered.Sink).Should().Equal(Enumerable.Range(1, 10).Select(i => (long)i));
    }
}
