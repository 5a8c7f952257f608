using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Capture runs with the writer's privileges (README, Deploying: "Writers need nothing extra"
/// beyond the listed grants on the PgEvents schema). A TRUNCATE of a partition is logged by
/// reading the partition's rows just before the truncation, as the writer: what the writer may
/// not or cannot see must still be logged, and the writer's statement must not fail.
/// </summary>
public sealed class CaptureSecondPassPrivilegeTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>, IAsyncLifetime
{
    private PgEventsSchema _schema = null!;

    public async Task InitializeAsync() => _schema = await db.OnceAsync("second-pass-privileges", () => db.InstallAsync());

    public Task DisposeAsync() => Task.CompletedTask;

    private static TableName T(string name) => new("public", name);

    /// <summary>The grants README lists for a writer that is not the owner.</summary>
    private Task GrantDocumentedWriterPrivilegesAsync(LoginRole role) => db.ExecuteAsync(
        $"""
        GRANT USAGE ON SCHEMA pgevents TO {role.Quoted};
        GRANT INSERT ON pgevents.events TO {role.Quoted};
        GRANT SELECT, INSERT, UPDATE ON pgevents.transactions TO {role.Quoted};
        GRANT SELECT ON pgevents.settings TO {role.Quoted};
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgevents TO {role.Quoted};
        """);

    private static async Task AsAsync(LoginRole role, string sql)
    {
        await using var dataSource = NpgsqlDataSource.Create(role.ConnectionString("second-pass-writer"));
        await using var command = dataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task A_writer_with_exactly_the_documented_grants_can_commit_a_write_of_a_tracked_table()
    {
        await db.ExecuteAsync("CREATE TABLE pv_plain (id int PRIMARY KEY, label text)");
        await _schema.TrackTableAsync(T("pv_plain"));
        await using var role = await LoginRole.CreateAsync(db, "pv_writer");
        await GrantDocumentedWriterPrivilegesAsync(role);
        await db.ExecuteAsync($"GRANT INSERT ON pv_plain TO {role.Quoted}");
        var drain = await LogDrain.CaughtUpAsync(db.DataSource, _schema);

        // The commit record is written with INSERT ... ON CONFLICT (xid) DO UPDATE, which also needs
        // SELECT on pgevents.transactions: the commit fails with "permission denied for table transactions".
        var write = () => AsAsync(role, "INSERT INTO pv_plain VALUES (1, 'by the writer')");

        await write.Should().NotThrowAsync("README says writers need only the listed grants");
        (await drain.DrainAsync()).Should().ContainSingle();
    }

    [Fact]
    public async Task Truncating_a_partition_as_a_writer_without_select_on_it_is_refused_with_a_clear_error_and_loses_nothing()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE pv_stock (id int, k text, qty int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
            CREATE TABLE pv_stock_a PARTITION OF pv_stock FOR VALUES IN ('a');
            CREATE TABLE pv_stock_b PARTITION OF pv_stock FOR VALUES IN ('b');
            """);
        await _schema.TrackTableAsync(T("pv_stock"));
        var drain = await LogDrain.CaughtUpAsync(db.DataSource, _schema);
        await db.ExecuteAsync("INSERT INTO pv_stock VALUES (1, 'a', 10), (2, 'b', 20)");
        await using var role = await LoginRole.CreateAsync(db, "pv_truncator");
        await GrantDocumentedWriterPrivilegesAsync(role);
        await db.ExecuteAsync($"GRANT TRUNCATE ON pv_stock_a TO {role.Quoted}");

        // Each removed row must be logged, and the writer cannot read them (documented): refused
        // with an error that names the table and the fix, rather than a bare permission error.
        var truncate = () => AsAsync(role, "TRUNCATE pv_stock_a");

        (await truncate.Should().ThrowAsync<Npgsql.PostgresException>()).Which.Message
            .Should().Contain("pv_stock_a").And.Contain("cannot read all rows");
        var replica = new ReplicaModel(T("pv_stock"), ["id", "k"], ["id", "k", "qty"]);
        replica.ApplyAll(await drain.DrainAsync());
        await replica.ShouldEqualSourceAsync(db, "nothing was truncated, nothing was lost");
    }

    [Fact]
    public async Task Truncating_a_partition_whose_rows_a_row_level_security_policy_hides_from_the_writer_is_refused_rather_than_logged_in_part()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE pv_docs (id int, k text, secret boolean, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
            CREATE TABLE pv_docs_a PARTITION OF pv_docs FOR VALUES IN ('a');
            CREATE TABLE pv_docs_b PARTITION OF pv_docs FOR VALUES IN ('b');
            """);
        await _schema.TrackTableAsync(T("pv_docs"));
        var drain = await LogDrain.CaughtUpAsync(db.DataSource, _schema);
        await db.ExecuteAsync("INSERT INTO pv_docs VALUES (1, 'a', false), (2, 'a', true), (3, 'b', true)");
        await using var role = await LoginRole.CreateAsync(db, "pv_rls");
        await GrantDocumentedWriterPrivilegesAsync(role);
        await db.ExecuteAsync(
            $"""
            GRANT SELECT ON pgevents.transactions TO {role.Quoted};
            GRANT SELECT, TRUNCATE ON pv_docs_a TO {role.Quoted};
            ALTER TABLE pv_docs_a ENABLE ROW LEVEL SECURITY;
            CREATE POLICY pv_public_only ON pv_docs_a FOR SELECT TO {role.Quoted} USING (NOT secret);
            """);

        // TRUNCATE ignores row-level security, the capture's read does not: logging only the visible
        // rows would leave the hidden one in every replica, so the TRUNCATE is refused (documented).
        var truncate = () => AsAsync(role, "TRUNCATE pv_docs_a");
        (await truncate.Should().ThrowAsync<Npgsql.PostgresException>()).Which.SqlState.Should().Be("42501");

        var replica = new ReplicaModel(T("pv_docs"), ["id", "k"], ["id", "k", "secret"]);
        replica.ApplyAll(await drain.DrainAsync());
        await replica.ShouldEqualSourceAsync(db, "nothing was truncated, nothing was lost");
    }
}
