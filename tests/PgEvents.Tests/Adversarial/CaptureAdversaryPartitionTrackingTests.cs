using PgEvents.Tests.Infrastructure;
using static PgEvents.Tests.Adversarial.Adversary;
using static PgEvents.Tests.Infrastructure.Interleaving;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// A partition gets clones of its parent's row triggers under the same names. A table that already
/// has capture triggers of its own (tracked on its own before) must not make tracking or ATTACH
/// fail, and tracking an already-correct partitioned table must not wait for writers.
/// </summary>
public sealed class CaptureAdversaryPartitionTrackingTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("partition-tracking", () => db.InstallAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    private static TableName T(string name) => new("public", name);

    [Fact]
    public async Task A_table_tracked_on_its_own_and_untracked_before_it_is_attached_to_a_tracked_partitioned_table_is_logged_under_that_table()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE pt_sales (id int, region text, amount int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE pt_sales_eu PARTITION OF pt_sales FOR VALUES IN ('eu');
            CREATE TABLE pt_sales_us (id int NOT NULL, region text NOT NULL, amount int);
            """);
        await _schema.TrackTableAsync(T("pt_sales"));
        await _schema.TrackTableAsync(T("pt_sales_us"));
        var drain = new LogDrain(db.DataSource, _schema);
        await drain.DrainAsync();

        // Its own triggers would clash with the clones ATTACH creates, and PostgreSQL refuses the
        // ATTACH (documented): untrack it first.
        var attach = () => db.ExecuteAsync("ALTER TABLE pt_sales ATTACH PARTITION pt_sales_us FOR VALUES IN ('us')");
        await attach.Should().ThrowAsync<Npgsql.PostgresException>();
        await _schema.UntrackTableAsync(T("pt_sales_us"));
        await attach.Should().NotThrowAsync();
        await _schema.TrackTableAsync(T("pt_sales"));
        await _schema.EnsureCapturedAsync([T("pt_sales")]);
        await db.ExecuteAsync("INSERT INTO pt_sales VALUES (1, 'us', 10), (2, 'eu', 20)");

        var events = await drain.DrainAsync();
        events.Should().HaveCount(2).And.AllSatisfy(e => e.Table.Should().Be("pt_sales"));
    }

    [Fact]
    public async Task A_partitioned_table_whose_partition_was_tracked_on_its_own_can_be_tracked()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE pt_events (id int, kind text, PRIMARY KEY (id, kind)) PARTITION BY LIST (kind);
            CREATE TABLE pt_events_a PARTITION OF pt_events FOR VALUES IN ('a');
            """);
        await _schema.TrackTableAsync(T("pt_events_a"));

        var track = () => _schema.TrackTableAsync(T("pt_events"));
        await track.Should().NotThrowAsync();
        await _schema.EnsureCapturedAsync([T("pt_events")]);
    }

    [Fact]
    public async Task A_detached_partition_is_no_longer_logged_as_its_former_partitioned_table_when_truncated()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE pt_orders (id int, kind text, label text, PRIMARY KEY (id, kind)) PARTITION BY LIST (kind);
            CREATE TABLE pt_orders_old PARTITION OF pt_orders FOR VALUES IN ('old');
            CREATE TABLE pt_orders_new PARTITION OF pt_orders FOR VALUES IN ('new');
            """);
        await _schema.TrackTableAsync(T("pt_orders"));
        var drain = new LogDrain(db.DataSource, _schema);
        await drain.DrainAsync();
        await db.ExecuteAsync("INSERT INTO pt_orders VALUES (1, 'new', 'kept')");

        // Documented: DETACH produces no deletes. The detached table is then an ordinary table.
        await db.ExecuteAsync("ALTER TABLE pt_orders DETACH PARTITION pt_orders_old");
        await db.ExecuteAsync("INSERT INTO pt_orders_old VALUES (2, 'old', 'archived after the detach')");
        await db.ExecuteAsync("TRUNCATE pt_orders_old");

        var events = await drain.DrainAsync();
        events.Select(e => e.Kind).Should().Equal([ChangeKind.Insert], "pt_orders_old's rows are no longer pt_orders' rows");
        var replica = new ReplicaModel(T("pt_orders"), ["id", "kind"], ["id", "kind", "label"]);
        replica.ApplyAll(events);
        await replica.ShouldEqualSourceAsync(db, "only the row in pt_orders_new belongs to pt_orders");
    }

    [Fact]
    public async Task Tracking_an_already_tracked_partitioned_table_does_not_wait_for_an_open_writer()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE pt_ledger (id int, book text, amount int, PRIMARY KEY (id, book)) PARTITION BY LIST (book);
            CREATE TABLE pt_ledger_a PARTITION OF pt_ledger FOR VALUES IN ('a') PARTITION BY RANGE (id);
            CREATE TABLE pt_ledger_a_all PARTITION OF pt_ledger_a DEFAULT;
            CREATE TABLE pt_ledger_b PARTITION OF pt_ledger FOR VALUES IN ('b');
            INSERT INTO pt_ledger VALUES (1, 'a', 1), (2, 'b', 2);
            """);
        await _schema.TrackTableAsync(T("pt_ledger"));

        await using var writer = await db.DataSource.OpenConnectionAsync();
        await ExecAsync(writer, "BEGIN; UPDATE pt_ledger SET amount = amount + 1 WHERE id = 1");
        Task track = Task.CompletedTask;
        await ReleasingOnFailureAsync([writer], [], async () =>
        {
            track = _schema.TrackTableAsync(T("pt_ledger"));
            var finished = await Task.WhenAny(track, Task.Delay(TimeSpan.FromSeconds(15)));
            finished.Should().BeSameAs(track, "tracking a correctly tracked table takes no lock");
            await track;
        });
        await ExecAsync(writer, "COMMIT");
    }
}
