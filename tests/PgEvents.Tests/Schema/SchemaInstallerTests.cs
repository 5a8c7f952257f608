using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Schema;

public sealed class SchemaInstallerTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task Installing_twice_is_idempotent_and_records_the_latest_version()
    {
        var schema = new PgEventsSchema(db.DataSource, new PgEventsSchemaOptions { SchemaName = "twice" });

        (await schema.GetInstalledVersionAsync()).Should().Be(0);
        (await schema.InstallAsync()).Should().Be(PgEventsSchema.LatestVersion);
        (await schema.InstallAsync()).Should().Be(PgEventsSchema.LatestVersion);

        (await schema.GetInstalledVersionAsync()).Should().Be(PgEventsSchema.LatestVersion);
        (await db.ScalarAsync<long>("SELECT count(*) FROM twice.schema_version")).Should().Be(PgEventsSchema.LatestVersion);
    }

    [Fact]
    public async Task Concurrent_installs_from_separate_sessions_all_succeed_and_apply_each_script_once()
    {
        // Separate data sources so every installer runs in its own server session, as separate
        // processes would; the barrier releases them together.
        const int installers = 8;
        var barrier = new Barrier(installers);
        var tasks = Enumerable.Range(0, installers).Select(_ => Task.Run(async () =>
        {
            await using var dataSource = NpgsqlDataSource.Create(db.ConnectionString);
            var schema = new PgEventsSchema(dataSource, new PgEventsSchemaOptions { SchemaName = "racing" });
            barrier.SignalAndWait();
            return await schema.InstallAsync();
        })).ToList();

        var versions = await Task.WhenAll(tasks);

        versions.Should().AllBeEquivalentTo(PgEventsSchema.LatestVersion);
        (await db.ScalarAsync<long>("SELECT count(*) FROM racing.schema_version")).Should().Be(PgEventsSchema.LatestVersion);
    }

    [Fact]
    public async Task A_schema_installed_by_a_newer_library_is_refused_with_a_clear_message()
    {
        var schema = await db.InstallAsync("from_the_future");
        await db.ExecuteAsync("INSERT INTO from_the_future.schema_version (version, script) VALUES (999, '999_future.sql')");

        var install = () => schema.InstallAsync();

        (await install.Should().ThrowAsync<PgEventsException>())
            .WithMessage("*version 999*newer PgEvents*Upgrade*");
    }

    [Fact]
    public async Task Schema_names_with_spaces_capitals_and_quotes_install_and_capture()
    {
        var schema = await db.InstallAsync("Odd \"Schema\" Name", "odd channel");
        await db.ExecuteAsync("CREATE TABLE odd_target (id int PRIMARY KEY)");
        await schema.TrackTableAsync(new TableName("public", "odd_target"));

        await db.ExecuteAsync("INSERT INTO odd_target VALUES (1)");

        (await db.ScalarAsync<long>("SELECT count(*) FROM \"Odd \"\"Schema\"\" Name\".events")).Should().Be(1);
    }

    [Fact]
    public async Task Two_installations_in_one_database_capture_the_same_table_independently()
    {
        var first = await db.InstallAsync("first_install");
        var second = await db.InstallAsync("second_install");
        await db.ExecuteAsync("CREATE TABLE shared_target (id int PRIMARY KEY)");
        await first.TrackTableAsync(new TableName("public", "shared_target"));
        await second.TrackTableAsync(new TableName("public", "shared_target"));

        await db.ExecuteAsync("INSERT INTO shared_target VALUES (1), (2)");
        await second.UntrackTableAsync(new TableName("public", "shared_target"));
        await db.ExecuteAsync("INSERT INTO shared_target VALUES (3)");

        (await db.ScalarAsync<long>("SELECT count(*) FROM first_install.events")).Should().Be(3);
        (await db.ScalarAsync<long>("SELECT count(*) FROM second_install.events")).Should().Be(2);
    }
}
