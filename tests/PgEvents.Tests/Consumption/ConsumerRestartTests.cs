using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

public sealed class ConsumerRestartTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static IEnumerable<long> Ids(EventSink sink) => sink.Deliveries.Select(d => ((Item)d.Row!).Id);

    [Fact]
    public async Task A_restarted_consumer_resumes_after_its_cursor_without_losing_or_repeating_events()
    {
        await db.ExecuteAsync("CREATE TABLE restart_items (id bigint PRIMARY KEY, label text NOT NULL)");
        void Map(PgEventsBuilder b) => b.AddHandler<Item, RecordingHandler<Item>>("restart_items");
        void Configure(PgEventsOptions o) => o.ConsumerName = "restart";

        await using (var first = await ConsumerHost.Create(db.ConnectionString, Map, Configure).StartAsync())
        {
            await db.ExecuteAsync("INSERT INTO restart_items SELECT g, 'x' FROM generate_series(1, 50) g");
            await first.Sink.WaitForCountAsync(50);
            await first.StopAsync();
            Ids(first.Sink).Should().Equal(Enumerable.Range(1, 50).Select(i => (long)i));
        }

        // Written while no consumer runs: the log keeps it.
        await db.ExecuteAsync("INSERT INTO restart_items SELECT g, 'x' FROM generate_series(51, 80) g");

        await using var second = await ConsumerHost.Create(db.ConnectionString, Map, Configure).StartAsync();
        await db.ExecuteAsync("INSERT INTO restart_items SELECT g, 'x' FROM generate_series(81, 100) g");
        await second.Sink.WaitForCountAsync(50);

        Ids(second.Sink).Should().Equal(Enumerable.Range(51, 50).Select(i => (long)i));
    }

    [Fact]
    public async Task Stopping_during_a_handler_abandons_only_that_event_and_the_next_run_delivers_it_first()
    {
        await db.ExecuteAsync("CREATE TABLE inflight_items (id bigint PRIMARY KEY, label text NOT NULL)");
        var gate = new HandlerGate { HoldId = 4 };
        void Map(PgEventsBuilder b) => b.AddHandler<Item, GatedHandler<Item>>("inflight_items");
        void Configure(PgEventsOptions o) => o.ConsumerName = "inflight";

        await using (var first = await ConsumerHost.Create(db.ConnectionString, Map, Configure,
                         services: s => s.AddSingleton(gate)).StartAsync())
        {
            await db.ExecuteAsync("INSERT INTO inflight_items SELECT g, 'x' FROM generate_series(1, 6) g");
            await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await first.StopAsync();
            Ids(first.Sink).Should().Equal(1, 2, 3);
        }

        gate.HoldId = -1;
        await using var second = await ConsumerHost.Create(db.ConnectionString, Map, Configure,
            services: s => s.AddSingleton(gate)).StartAsync();
        await second.Sink.WaitForCountAsync(3);

        Ids(second.Sink).Should().Equal(4, 5, 6);
    }
}
