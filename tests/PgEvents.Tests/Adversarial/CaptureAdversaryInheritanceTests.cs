using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Inheritance children carry their own copy of the capture triggers, whose argument names the
/// tracked parent. That copy must follow the inheritance tree: when the child leaves it, when the
/// parent is untracked, and when a child has two tracked ancestors.
/// </summary>
public sealed class CaptureAdversaryInheritanceTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("inheritance", () => db.InstallAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    private static TableName T(string name) => new("public", name);

    private async Task<LogDrain> FreshDrainAsync()
    {
        var drain = new LogDrain(db.DataSource, _schema);
        await drain.DrainAsync();
        return drain;
    }

    [Fact]
    public async Task Untracking_a_parent_stops_the_capture_of_its_children()
    {
        await db.ExecuteAsync("CREATE TABLE ih_animals (id int PRIMARY KEY, name text); CREATE TABLE ih_dogs () INHERITS (ih_animals)");
        await _schema.TrackTableAsync(T("ih_animals"));
        await _schema.UntrackTableAsync(T("ih_animals"));
        var drain = await FreshDrainAsync();

        await db.ExecuteAsync("INSERT INTO ih_dogs VALUES (1, 'rex'); UPDATE ih_animals SET name = 'max'; TRUNCATE ih_dogs");

        (await drain.DrainAsync()).Should().BeEmpty("ih_animals is no longer tracked, so nothing is logged under its name");
        (await _schema.GetTrackedTablesAsync()).Should().NotContain(T("ih_animals"));
    }

    [Fact]
    public async Task A_child_removed_with_no_inherit_is_no_longer_logged_as_its_former_parent()
    {
        await db.ExecuteAsync("CREATE TABLE ih_staff (id int PRIMARY KEY, name text); CREATE TABLE ih_contractors () INHERITS (ih_staff)");
        await _schema.TrackTableAsync(T("ih_staff"));
        var drain = await FreshDrainAsync();
        await db.ExecuteAsync("INSERT INTO ih_staff VALUES (1, 'employee')");

        await db.ExecuteAsync("ALTER TABLE ih_contractors NO INHERIT ih_staff");
        await db.ExecuteAsync("INSERT INTO ih_contractors VALUES (2, 'not staff any more')");

        var replica = new ReplicaModel(T("ih_staff"), ["id"], ["id", "name"]);
        replica.ApplyAll(await drain.DrainAsync());
        await replica.ShouldEqualSourceAsync(db, "a row of a table that no longer inherits from ih_staff is not a row of ih_staff");

        // The former child's triggers are reported as left over, and tracking again removes them.
        var check = () => _schema.EnsureCapturedAsync([T("ih_staff")]);
        (await check.Should().ThrowAsync<PgEventsException>()).Which.Message.Should().Contain("ih_contractors").And.Contain("left over");
        await _schema.TrackTableAsync(T("ih_staff"));
        await check.Should().NotThrowAsync();
        (await db.ScalarAsync<long>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ih_contractors'::regclass")).Should().Be(0);
    }

    [Fact]
    public async Task A_child_with_two_tracked_parents_is_refused_with_an_error_naming_both()
    {
        // A table is logged as part of one tracked table only (documented): the second parent's
        // tracking says so instead of taking the child from the first.
        await db.ExecuteAsync(
            """
            CREATE TABLE ih_named (id int PRIMARY KEY, name text);
            CREATE TABLE ih_priced (id int, price numeric);
            CREATE TABLE ih_products () INHERITS (ih_named, ih_priced);
            """);
        await _schema.TrackTableAsync(T("ih_named"));
        var second = () => _schema.TrackTableAsync(T("ih_priced"));

        (await second.Should().ThrowAsync<PgEventsException>()).Which.Message
            .Should().Contain("ih_products").And.Contain("ih_named").And.Contain("ih_priced");
        var drain = await FreshDrainAsync();
        await db.ExecuteAsync("INSERT INTO ih_products VALUES (1, 'pen', 2.5)");
        var named = new ReplicaModel(T("ih_named"), ["id"], ["id", "name"]);
        named.ApplyAll(await drain.DrainAsync());
        await named.ShouldEqualSourceAsync(db, "the first parent keeps its child");
        await _schema.EnsureCapturedAsync([T("ih_named")]);
    }

    [Fact]
    public async Task Tracking_a_child_of_a_tracked_parent_is_refused_and_the_parent_stays_fully_captured()
    {
        await db.ExecuteAsync("CREATE TABLE ih_docs (id int PRIMARY KEY, title text); CREATE TABLE ih_memos () INHERITS (ih_docs)");
        await _schema.TrackTableAsync(T("ih_docs"));
        var child = () => _schema.TrackTableAsync(T("ih_memos"));
        (await child.Should().ThrowAsync<PgEventsException>()).Which.Message.Should().Contain("already captured as part of the tracked table ih_docs");
        var drain = await FreshDrainAsync();

        await db.ExecuteAsync("INSERT INTO ih_memos VALUES (1, 'memo')");

        var docs = new ReplicaModel(T("ih_docs"), ["id"], ["id", "title"]);
        docs.ApplyAll(await drain.DrainAsync());
        await docs.ShouldEqualSourceAsync(db, "SELECT FROM ih_docs returns the memo");
        await _schema.EnsureCapturedAsync([T("ih_docs")]);
    }

    [Fact]
    public async Task Tracking_a_parent_takes_over_a_child_that_was_tracked_on_its_own()
    {
        await db.ExecuteAsync("CREATE TABLE ih_notes (id int PRIMARY KEY, title text); CREATE TABLE ih_todos () INHERITS (ih_notes)");
        await _schema.TrackTableAsync(T("ih_todos"));
        await _schema.TrackTableAsync(T("ih_notes"));
        var drain = await FreshDrainAsync();

        await db.ExecuteAsync("INSERT INTO ih_todos VALUES (1, 'todo')");

        (await drain.DrainAsync()).Should().ContainSingle().Which.TableName.Should().Be(T("ih_notes"));
        await _schema.EnsureCapturedAsync([T("ih_notes")]);
    }
}
