using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Schema;

/// <summary>A database installed and tracked by an earlier version keeps every change across an upgrade.</summary>
public sealed class SchemaUpgradeTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task Tables_tracked_by_version_5_are_captured_once_each_by_version_6_with_nothing_lost_across_the_upgrade()
    {
        // Versions 1 to 5 exactly as the installer of that release applied them.
        var schema = await db.InstallAsOfVersionAsync(5);
        await db.ExecuteAsync(
            """
            CREATE TABLE up_plain (id int PRIMARY KEY, v text);
            CREATE TABLE up_parent (id int PRIMARY KEY, v text);
            CREATE TABLE up_child () INHERITS (up_parent);
            SELECT pgevents.track_table('up_plain'), pgevents.track_table('up_parent'), pgevents.track_table('up_child');
            INSERT INTO up_plain VALUES (1, 'before'); INSERT INTO up_parent VALUES (1, 'before'); INSERT INTO up_child VALUES (2, 'before');
            """);

        (await schema.InstallAsync()).Should().Be(PgEventsSchema.LatestVersion);
        await db.ExecuteAsync(
            """
            INSERT INTO up_plain VALUES (3, 'after'); UPDATE up_plain SET v = 'changed';
            INSERT INTO up_child VALUES (4, 'after'); UPDATE up_parent SET v = 'changed' WHERE id IN (2, 4);
            """);

        var events = await new LogDrain(db.DataSource, schema).DrainAsync();
        events.Select(e => $"{e.Table}:{e.Kind}").Should().Equal(
            "up_plain:Insert", "up_parent:Insert", "up_child:Insert",
            "up_plain:Insert", "up_plain:Update", "up_plain:Update",
            "up_parent:Insert", "up_parent:Update", "up_parent:Update");
        await schema.EnsureCapturedAsync([new TableName("public", "up_plain"), new TableName("public", "up_parent")]);
        (await db.ScalarAsync<long>("SELECT count(*) FROM pg_trigger WHERE tgname IN ('pgevents_insert', 'pgevents_update', 'pgevents_delete')"))
            .Should().Be(0, "the statement-level triggers of version 5 are gone");
    }
}
