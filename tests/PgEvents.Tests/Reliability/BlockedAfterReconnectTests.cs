using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Reliability;

/// <summary>Takes the event's transaction before it consults the switch, so a failing attempt on a dead connection fails on the connection.</summary>
public sealed class TransactionFirstSwitchedHandler(EventSink sink, FailureSwitch failures) : IRowHandler<Item>
{
    public async Task HandleAsync(RowChange<Item> change, CancellationToken cancellationToken)
    {
        await change.GetTransactionAsync(cancellationToken);
        if (change.Row!.Id == failures.FailingId)
        {
            var attempt = failures.Attempt();
            if (failures.Failing)
            {
                throw new InvalidOperationException(failures.Message(change.Row.Id, attempt));
            }
        }

        sink.Record("transaction-first", change);
    }
}

public sealed class BlockedAfterReconnectTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task An_event_that_blocked_before_a_reconnect_and_succeeds_after_it_no_longer_shows_as_blocked()
    {
        await db.ExecuteAsync("CREATE TABLE stale_block_items (id bigint PRIMARY KEY, label text NOT NULL)");
        const string app = "stale-block-consumer";
        await using var host = await ConsumerHost.Create(FaultHelpers.WithApplicationName(db.ConnectionString, app),
            b => b.AddHandler<Item, TransactionFirstSwitchedHandler>("stale_block_items"),
            o => { o.ConsumerName = "staleblock"; o.ReconnectDelay = TimeSpan.FromSeconds(1); },
            services: s => s.AddSingleton(new FailureSwitch { FailingId = 2 })).StartAsync();
        var failures = host.Services.GetRequiredService<FailureSwitch>();

        await db.ExecuteAsync("INSERT INTO stale_block_items SELECT g, 'x' FROM generate_series(1, 3) g");
        await failures.WaitForAttemptsAsync(2);
        (await host.Consumer.GetStatusAsync()).Blocked.Should().NotBeNull();

        // The connection dies while the event is retried; the next attempt notices and the consumer
        // reconnects. Meanwhile the handler is fixed, so the first attempt after the reconnect succeeds.
        await FaultHelpers.TerminateAsync(db.ConnectionString, app);
        await Eventually.UntilAsync(async () => await TryStatusAsync(host) is { IsActive: false }, "the consumer should notice the lost connection");
        failures.Failing = false;
        await FaultHelpers.WaitForIdAsync(host.Sink, 3);

        var status = await Eventually.UntilAsync(
            () => TryStatusAsync(host), s => s is { IsActive: true, Blocked: null },
            "the delivered event should no longer block the consumer", TimeSpan.FromSeconds(10));
        status!.CursorPosition.Should().BeGreaterThan(0);
    }

    private static async Task<ConsumerStatus?> TryStatusAsync(ConsumerHost host)
    {
        try
        {
            return await host.Consumer.GetStatusAsync();
        }
        catch (Npgsql.NpgsqlException)
        {
            // A pooled status connection killed along with the consumer's.
            return null;
        }
    }
}
