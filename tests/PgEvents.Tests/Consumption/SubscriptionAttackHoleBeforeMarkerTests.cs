using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// A committed transaction of another consumer's table after a position still held by a committing
/// transaction of a subscribed table is a marker the cursor must not pass: the hole is waited for.
/// </summary>
public sealed class SubscriptionAttackHoleBeforeMarkerTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private const string SharedLog = "log_sub_attack_hole";

    public sealed record HoleOrder(int Id, int? CustomerId, string Label);

    private async Task<NpgsqlConnection> OpenAsync() => await db.DataSource.OpenConnectionAsync();

    [Fact]
    public async Task A_marker_committed_after_a_subscribed_transactions_early_position_does_not_let_the_cursor_pass_it()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE hm_customers (id int PRIMARY KEY);
            INSERT INTO hm_customers VALUES (1);
            CREATE TABLE hm_orders (id int PRIMARY KEY, customer_id int REFERENCES hm_customers DEFERRABLE INITIALLY DEFERRED, label text NOT NULL);
            CREATE TABLE hm_other (id int PRIMARY KEY, customer_id int, label text NOT NULL);
            """);
        await using var other = await ConsumerHost.Create(db.ConnectionString,
            m => m.AddHandler<HoleOrder, RecordingHandler<HoleOrder>>("hm_other"),
            o => { o.ConsumerName = "hm_other_consumer"; o.SchemaName = SharedLog; }).StartAsync();
        await using var host = await ConsumerHost.Create(db.ConnectionString,
            m => m.AddHandler<HoleOrder, RecordingHandler<HoleOrder>>("hm_orders"),
            o => { o.ConsumerName = "hm_orders_consumer"; o.SchemaName = SharedLog; }).StartAsync();
        await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.IsActive, s => $"active {s.IsActive}");

        await using var b = await OpenAsync();
        await using var x = await OpenAsync();
        await OrderingTable.ExecuteAsync(x, "BEGIN; SELECT * FROM hm_customers WHERE id = 1 FOR UPDATE");
        await OrderingTable.ExecuteAsync(b, "BEGIN; INSERT INTO hm_orders VALUES (12, NULL, 'B'); INSERT INTO hm_orders VALUES (13, 1, 'B2')");
        var bCommit = OrderingTable.ExecuteAsync(b, "COMMIT");
        long markerPosition = 0;
        await Interleaving.ReleasingOnFailureAsync([x], [bCommit], async () =>
        {
            await Interleaving.WaitingOnLockAsync(db, b.ProcessID);

            // Only another consumer's table commits after B's position: a marker for this consumer.
            await db.ExecuteAsync("INSERT INTO hm_other VALUES (1, NULL, 'other')");
            markerPosition = await db.ScalarAsync<long>($"SELECT max(position) FROM {SharedLog}.transactions");

            // The consumer reads the marker, sees the hole before it and waits on B's commit.
            await Interleaving.WaitingOnLockAsync(db, "PgEvents:hm_orders_consumer");
            var status = await host.Consumer.GetStatusAsync();
            status.CursorPosition.Should().BeLessThan(markerPosition, "B, holding an earlier position, can still commit");
            (await db.ScalarAsync<long>($"SELECT position FROM {SharedLog}.consumers WHERE name = 'hm_orders_consumer'"))
                .Should().BeLessThan(markerPosition);
        });

        await OrderingTable.ExecuteAsync(x, "COMMIT");
        await bCommit;
        await db.ExecuteAsync("INSERT INTO hm_orders VALUES (14, NULL, 'C')");
        await host.Sink.WaitForCountAsync(3);
        await other.Sink.WaitForCountAsync(1);

        host.Sink.Deliveries.Select(d => ((HoleOrder)d.Row!).Label).Should().Equal("B", "B2", "C");
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(),
            s => s.CursorPosition == s.HeadPosition && s.LagEvents == 0 && s.LagTime == TimeSpan.Zero,
            s => $"cursor {s.CursorPosition}, head {s.HeadPosition}, lag {s.LagEvents}/{s.LagTime}");
    }
}
