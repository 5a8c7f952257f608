using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// A retired table's backlog is exactly what was committed while the consumer subscribed to it: each
/// retired table counts up to the head of the log when <em>it</em> was unsubscribed, whatever other
/// tables are unsubscribed later, and a table re-added then removed again counts up to its latest removal.
/// </summary>
public sealed class SubscriptionAttackRetiredWindowTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private const string SharedLog = "log_sub_attack_retired";

    private ConsumerHost Consumer(string name, Action<PgEventsBuilder> map, Action<IServiceCollection>? services = null) =>
        ConsumerHost.Create(db.ConnectionString, map, o =>
        {
            o.ConsumerName = name;
            o.SchemaName = SharedLog;
        }, services: services);

    private Task CreateTableAsync(string table) => db.ExecuteAsync($"CREATE TABLE {table} (id bigint PRIMARY KEY, label text NOT NULL)");

    private static async Task<ConsumerStatus> SettledAsync(ConsumerHost host) =>
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(),
            s => s.IsActive && (s.Blocked is not null || (s.CursorPosition == s.HeadPosition && s.LagEvents == 0)),
            s => $"active {s.IsActive}, cursor {s.CursorPosition}/{s.CursorEventId}, head {s.HeadPosition}, lag {s.LagEvents}, blocked {s.Blocked?.LastError}");

    [Fact]
    public async Task A_table_unsubscribed_earlier_does_not_come_back_when_another_table_is_unsubscribed_later()
    {
        await CreateTableAsync("ret_a");
        await CreateTableAsync("ret_b");
        await CreateTableAsync("ret_c");
        await using (var all = await Consumer("ret_window", m => m.AddHandler<Item, RecordingHandler<Item>>("ret_a")
                         .AddHandler<Item, RecordingHandler<Item>>("ret_b").AddHandler<Item, RecordingHandler<Item>>("ret_c")).StartAsync())
        {
            await db.ExecuteAsync("INSERT INTO ret_a VALUES (1, 'seen')");
            await all.Sink.WaitForCountAsync(1);
            await SettledAsync(all);
        }

        // ret_b is unsubscribed here; nothing is left for the consumer to read.
        await using (var withoutB = await Consumer("ret_window", m => m.AddHandler<Item, RecordingHandler<Item>>("ret_a")
                         .AddHandler<Item, RecordingHandler<Item>>("ret_c")).StartAsync())
        {
            (await SettledAsync(withoutB)).Blocked.Should().BeNull();
        }

        // Committed after ret_b was unsubscribed: not the consumer's business, ever.
        await db.ExecuteAsync("INSERT INTO ret_b VALUES (2, 'after ret_b was unsubscribed')");

        // Now ret_c is unsubscribed too (its window ends here); ret_b's window must not grow with it.
        await using var onlyA = await Consumer("ret_window", m => m.AddHandler<Item, RecordingHandler<Item>>("ret_a")).StartAsync();
        await db.ExecuteAsync("INSERT INTO ret_a VALUES (3, 'later')");
        var status = await SettledAsync(onlyA);

        status.Blocked.Should().BeNull("ret_b's change was committed after ret_b left the subscription: {0}", status.Blocked?.LastError);
        onlyA.Sink.Deliveries.Should().ContainSingle().Which.Table.Should().Be("ret_a");
    }

    [Fact]
    public async Task A_table_removed_readded_and_removed_again_keeps_the_backlog_committed_while_it_was_readded()
    {
        await CreateTableAsync("rer_a");
        await CreateTableAsync("rer_b");
        await using (var both = await Consumer("ret_readd", m => m.AddHandler<Item, RecordingHandler<Item>>("rer_a")
                         .AddHandler<Item, RecordingHandler<Item>>("rer_b")).StartAsync())
        {
            await db.ExecuteAsync("INSERT INTO rer_a VALUES (1, 'seen')");
            await both.Sink.WaitForCountAsync(1);
            await SettledAsync(both);
        }

        // rer_b removed (nothing of it in the log), then re-added: its handler fails on row 2, so the
        // cursor stays before it.
        await using (var withoutB = await Consumer("ret_readd", m => m.AddHandler<Item, RecordingHandler<Item>>("rer_a")).StartAsync())
        {
            (await SettledAsync(withoutB)).Blocked.Should().BeNull();
        }

        var failures = new FailureSwitch { FailingId = 2 };
        await using (var readded = await Consumer(
                         "ret_readd",
                         m => m.AddHandler<Item, RecordingHandler<Item>>("rer_a").AddHandler<Item, SwitchedHandler<Item>>("rer_b"),
                         s => s.AddSingleton(failures)).StartAsync())
        {
            // Committed while rer_b is subscribed: the consumer's business.
            await db.ExecuteAsync("INSERT INTO rer_b VALUES (2, 'while re-added')");
            await failures.WaitForAttemptsAsync(1);
        }

        // Removed again: the unread change of rer_b is backlog, so the default policy blocks on it.
        await using var removedAgain = await Consumer("ret_readd", m => m.AddHandler<Item, RecordingHandler<Item>>("rer_a")).StartAsync();
        var status = await SettledAsync(removedAgain);

        status.Blocked.Should().NotBeNull("rer_b's change was committed while rer_b was subscribed and never delivered");
        status.Blocked!.Table.Should().Be(new TableName("public", "rer_b"));
    }
}
