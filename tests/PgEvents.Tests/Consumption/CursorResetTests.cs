using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

public sealed record ResetItem(long Id, string Label) : ITestRow;

public sealed class CursorResetTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static List<long> Ids(IEnumerable<Delivery> deliveries) => deliveries.Select(d => ((ResetItem)d.Row!).Id).ToList();

    private static IEnumerable<long> Range(int from, int to) => Enumerable.Range(from, to - from + 1).Select(i => (long)i);

    private async Task<ConsumerHost> StartAsync(string name)
    {
        return await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<ResetItem, RecordingHandler<ResetItem>>(name),
            o => o.ConsumerName = name).StartAsync();
    }

    /// <summary>Inserts each row in its own transaction, so each has its own position.</summary>
    private async Task InsertAsync(string table, int from, int to)
    {
        for (var id = from; id <= to; id++)
        {
            await db.ExecuteAsync($"INSERT INTO {table} VALUES ({id}, 'item {id}')");
        }
    }

    private Task<long> PositionOfAsync(string table, long id) => db.ScalarAsync<long>(
        $"SELECT t.position FROM log_{table}.events e JOIN log_{table}.transactions t ON t.xid = e.xid WHERE (e.row_data->>'id')::bigint = @id",
        ("id", id));

    [Fact]
    public async Task A_reset_past_the_head_is_refused_and_the_cursor_and_later_events_stay_as_they_were()
    {
        await db.ExecuteAsync("CREATE TABLE reset_past (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await StartAsync("reset_past");
        await InsertAsync("reset_past", 1, 3);
        await host.Sink.WaitForCountAsync(3, Wait);
        var head = host.Sink.Deliveries[^1].Position;

        var tooFar = () => host.Consumer.ResetCursorToPositionAsync(head + 2);

        (await tooFar.Should().ThrowAsync<ArgumentOutOfRangeException>()).Which.Message.Should()
            .Contain($"the last committed position is {head}").And.Contain($"restart at {head + 1} at the latest");
        await host.Consumer.ResetCursorToPositionAsync(head + 1);
        await InsertAsync("reset_past", 4, 4);
        await host.Sink.WaitForCountAsync(4, Wait);
        Ids(host.Sink.Deliveries).Should().Equal(Range(1, 4), "skipping to the head + 1 passes nothing committed later");
    }

    [Fact]
    public async Task Resetting_a_running_consumer_to_an_earlier_position_redelivers_from_that_position_in_order_without_a_restart()
    {
        await db.ExecuteAsync("CREATE TABLE reset_back (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await StartAsync("reset_back");
        await InsertAsync("reset_back", 1, 10);
        await host.Sink.WaitForCountAsync(10, Wait);
        Ids(host.Sink.Deliveries).Should().Equal(Range(1, 10));
        var fifth = host.Sink.Deliveries[4];

        await host.Consumer.ResetCursorToPositionAsync(fifth.Position);
        await host.Sink.WaitForCountAsync(16, Wait);

        var again = host.Sink.Deliveries.Skip(10).ToList();
        Ids(again).Should().Equal(Range(5, 10));
        again.Select(d => (d.Position, d.EventId)).Should().Equal(host.Sink.Deliveries.Skip(4).Take(6).Select(d => (d.Position, d.EventId)),
            "the same events are delivered again, in the same order");
        host.Running.IsCompleted.Should().BeFalse("the consumer was not restarted");

        // Nothing else was repeated: the next event written comes right after the replayed ones.
        await InsertAsync("reset_back", 11, 11);
        await host.Sink.WaitForCountAsync(17, Wait);
        Ids(host.Sink.Deliveries.Skip(10)).Should().Equal(Range(5, 11));
    }

    [Fact]
    public async Task Resetting_a_running_consumer_to_a_commit_time_redelivers_the_transactions_committed_since_then()
    {
        await db.ExecuteAsync("CREATE TABLE reset_time (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await StartAsync("reset_time");
        await InsertAsync("reset_time", 1, 10);
        await host.Sink.WaitForCountAsync(10, Wait);
        var committedAt = await db.ScalarAsync<DateTime>(
            "SELECT committed_at FROM log_reset_time.transactions WHERE position = @position", ("position", host.Sink.Deliveries[6].Position));

        await host.Consumer.ResetCursorToTimeAsync(new DateTimeOffset(committedAt));
        await host.Sink.WaitForCountAsync(14, Wait);

        Ids(host.Sink.Deliveries.Skip(10)).Should().Equal(Range(7, 10));
        host.Running.IsCompleted.Should().BeFalse();
    }

    [Fact]
    public async Task A_commit_time_given_with_a_non_UTC_offset_means_the_same_instant()
    {
        await db.ExecuteAsync("CREATE TABLE reset_offset (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await StartAsync("reset_offset");
        await InsertAsync("reset_offset", 1, 4);
        await host.Sink.WaitForCountAsync(4, Wait);
        var committedAt = await db.ScalarAsync<DateTime>(
            "SELECT committed_at FROM log_reset_offset.transactions WHERE position = @position", ("position", host.Sink.Deliveries[2].Position));

        // DateTimeOffset.Now on a machine east of Greenwich looks like this; Npgsql only writes UTC
        // offsets to timestamptz, so the consumer must convert it.
        await host.Consumer.ResetCursorToTimeAsync(new DateTimeOffset(committedAt).ToOffset(TimeSpan.FromHours(2)));
        await host.Sink.WaitForCountAsync(6, Wait);

        Ids(host.Sink.Deliveries.Skip(4)).Should().Equal(3, 4);
    }

    [Fact]
    public async Task Resetting_to_a_later_position_skips_ahead_and_the_events_before_it_are_not_delivered_after_a_restart()
    {
        await db.ExecuteAsync("CREATE TABLE reset_ahead (id bigint PRIMARY KEY, label text NOT NULL)");
        await using (var first = await StartAsync("reset_ahead"))
        {
            await InsertAsync("reset_ahead", 1, 2);
            await first.Sink.WaitForCountAsync(2, Wait);
            await first.StopAsync();

            // Written while the consumer is stopped; the operator decides 3..5 are not to be delivered.
            await InsertAsync("reset_ahead", 3, 8);
            await first.Consumer.ResetCursorToPositionAsync(await PositionOfAsync("reset_ahead", 6));
        }

        await using var second = await StartAsync("reset_ahead");
        await InsertAsync("reset_ahead", 9, 9);
        await second.Sink.WaitForCountAsync(4, Wait);

        Ids(second.Sink.Deliveries).Should().Equal(6, 7, 8, 9);
    }

    [Fact]
    public async Task Resetting_past_an_event_that_blocks_a_running_consumer_unblocks_it_and_delivers_from_the_new_position()
    {
        await db.ExecuteAsync("CREATE TABLE reset_unblock (id bigint PRIMARY KEY, label text NOT NULL)");
        var stuck = new FailureSwitch { FailingId = 3, Message = (id, _) => $"item {id} cannot be handled" };
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<ResetItem, SwitchedHandler<ResetItem>>("reset_unblock"),
            o => o.ConsumerName = "reset_unblock", services: s => s.AddSingleton(stuck)).StartAsync();
        await InsertAsync("reset_unblock", 1, 5);
        await stuck.WaitForAttemptsAsync(3, Wait);
        Ids(host.Sink.Deliveries).Should().Equal(1, 2);

        // A consumer blocked on a failing event must notice the reset during its backoff; otherwise
        // it would keep retrying item 3 and, once 3 succeeded, deliver 3, 4, 5 and then 4, 5 again.
        await host.Consumer.ResetCursorToPositionAsync(await PositionOfAsync("reset_unblock", 4));
        await host.Sink.WaitForCountAsync(4, Wait);

        Ids(host.Sink.Deliveries).Should().Equal(1, 2, 4, 5);
        (await host.Consumer.GetStatusAsync()).Blocked.Should().BeNull();
    }

    [Fact]
    public async Task Resetting_a_consumer_kept_busy_by_a_stream_of_writes_redelivers_from_that_position_with_nothing_skipped()
    {
        // A busy consumer saves its cursor on an interval, not after every read, and meets the reset
        // at such a save: until then it delivers on, and from then on it must start over exactly at
        // the reset position, however far it had got.
        await db.ExecuteAsync("CREATE TABLE reset_busy (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await StartAsync("reset_busy");
        using var stopWriting = new CancellationTokenSource();
        var written = 0;
        var writer = Task.Run(async () =>
        {
            while (!stopWriting.IsCancellationRequested)
            {
                var id = Volatile.Read(ref written) + 1;
                await db.ExecuteAsync($"INSERT INTO reset_busy VALUES ({id}, 'item {id}')");
                Volatile.Write(ref written, id);
            }
        });

        await host.Sink.WaitForCountAsync(200, Wait);
        var resetTo = await PositionOfAsync("reset_busy", 50);
        await host.Consumer.ResetCursorToPositionAsync(resetTo);
        await Eventually.UntilAsync(() => Ids(host.Sink.Deliveries).Count(id => id == 50) == 2, "the reset is met while writes go on");
        await host.Sink.WaitForCountAsync(Ids(host.Sink.Deliveries).Count + 100, Wait);
        await stopWriting.CancelAsync();
        await writer;
        var last = Volatile.Read(ref written);
        await Eventually.UntilAsync(() =>
        {
            var delivered = Ids(host.Sink.Deliveries);
            return delivered.Count - delivered.LastIndexOf(50) >= last - 49;
        }, "everything written is delivered after the replay");

        var ids = Ids(host.Sink.Deliveries);
        var restart = ids.LastIndexOf(50);
        ids.Take(restart).Should().Equal(Range(1, restart), "before the reset was met, delivery ran in order from the start");
        ids.Skip(restart).Should().Equal(Range(50, last), "from the reset on, everything from position 50 in order, once");
        host.Running.IsCompleted.Should().BeFalse("the consumer was not restarted");
    }
}
