using PgEvents.Tests.Infrastructure;
using static PgEvents.Tests.Adversarial.Adversary;
using static PgEvents.Tests.Infrastructure.Interleaving;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Second adversarial pass on the "one tracked table per row" rule: a table taken over by its
/// tracked parent carries triggers that capture for the parent, so untracking the member must not
/// silently switch off the parent's capture; and re-tracking a correct table takes no lock.
/// </summary>
public sealed class CaptureSecondPassTrackingTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("second-pass-tracking", () => db.InstallAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    private static TableName T(string name) => new("public", name);

    [Fact]
    public async Task Untracking_a_child_that_its_tracked_parent_took_over_does_not_stop_the_capture_of_the_parents_rows()
    {
        // The documented take-over: the child was tracked on its own, then its parent was tracked.
        // An application that no longer maps the child untracks it; the rows are still the parent's.
        await db.ExecuteAsync("CREATE TABLE st_notes (id int PRIMARY KEY, title text); CREATE TABLE st_todos () INHERITS (st_notes)");
        await _schema.TrackTableAsync(T("st_todos"));
        await _schema.TrackTableAsync(T("st_notes"));
        var drain = await LogDrain.CaughtUpAsync(db.DataSource, _schema);

        // untrack_table drops every capture trigger the table carries, whatever tracked table it captures for.
        try
        {
            await _schema.UntrackTableAsync(T("st_todos"));
        }
        catch (PgEventsException)
        {
            // Refusing to untrack a table that is only part of another tracked table is fine too.
        }

        await db.ExecuteAsync("INSERT INTO st_todos VALUES (1, 'a row of st_notes'); INSERT INTO st_notes VALUES (2, 'parent row')");

        var replica = new ReplicaModel(T("st_notes"), ["id"], ["id", "title"]);
        replica.ApplyAll(await drain.DrainAsync());
        await replica.ShouldEqualSourceAsync(db, "SELECT FROM st_notes returns the todo, so its insert must be delivered");
        await _schema.EnsureCapturedAsync([T("st_notes")]);
    }

    [Fact]
    public async Task Untracking_a_partition_of_a_tracked_table_does_not_stop_the_capture_of_its_truncate()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE st_sales (id int, region text, amount int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
            CREATE TABLE st_sales_eu PARTITION OF st_sales FOR VALUES IN ('eu');
            CREATE TABLE st_sales_us PARTITION OF st_sales FOR VALUES IN ('us');
            """);
        await _schema.TrackTableAsync(T("st_sales"));
        var drain = await LogDrain.CaughtUpAsync(db.DataSource, _schema);
        await db.ExecuteAsync("INSERT INTO st_sales VALUES (1, 'eu', 10), (2, 'us', 20)");

        try
        {
            await _schema.UntrackTableAsync(T("st_sales_eu"));
        }
        catch (PgEventsException)
        {
            // Refusing to untrack a table that is only part of another tracked table is fine too.
        }

        await db.ExecuteAsync("TRUNCATE st_sales_eu");

        var replica = new ReplicaModel(T("st_sales"), ["id", "region"], ["id", "region", "amount"]);
        replica.ApplyAll(await drain.DrainAsync());
        await replica.ShouldEqualSourceAsync(db, "the eu row is gone from st_sales");
    }

    [Fact]
    public async Task Tracking_an_already_tracked_inheritance_parent_with_grandchildren_does_not_wait_for_an_open_writer_of_a_grandchild()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE st_animals (id int PRIMARY KEY, name text);
            CREATE TABLE st_dogs () INHERITS (st_animals);
            CREATE TABLE st_puppies () INHERITS (st_dogs);
            INSERT INTO st_puppies VALUES (1, 'rex');
            """);
        await _schema.TrackTableAsync(T("st_animals"));

        await using var writer = await db.DataSource.OpenConnectionAsync();
        await ExecAsync(writer, "BEGIN; UPDATE st_puppies SET name = 'max'; UPDATE st_animals SET name = name || '!'");
        await ReleasingOnFailureAsync([writer], [], async () =>
        {
            var track = _schema.TrackTableAsync(T("st_animals"));
            var finished = await Task.WhenAny(track, Task.Delay(TimeSpan.FromSeconds(15)));
            finished.Should().BeSameAs(track, "tracking a correctly tracked table takes no lock");
            await track;
        });
        await ExecAsync(writer, "COMMIT");
    }
}
