using System.Text.Json.Serialization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Hosting;

public sealed record GhostRow(long Id);

public sealed record KeylessRow(long Id, string Label);

public sealed record OverreachingRow(long Id, string Label, string Nickname);

public sealed record MistypedRow(long Id, int Label);

public sealed record NarrowRow(long Id);

public sealed record OrderItemRow(long Id, [property: JsonPropertyName("Unit Price")] decimal UnitPrice);

public sealed record QuotedRow(long Id, [property: JsonPropertyName("Bob's \"Note\"")] string Note);

public sealed class StartupValidationTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Runs the consumer directly. A valid mapping would make it consume until the deadline and return
    /// normally, which the callers' <c>ThrowAsync</c> turns into a failure instead of a hang.
    /// </summary>
    private static async Task RunBrieflyAsync(ConsumerHost host)
    {
        using var deadline = new CancellationTokenSource(Wait);
        await host.Consumer.RunAsync(deadline.Token);
    }

    private Task<bool> SchemaExistsAsync(string schema) =>
        db.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = @schema)", ("schema", schema));

    [Fact]
    public async Task RunAsync_fails_before_consuming_with_one_PgEventsException_that_lists_every_mapping_problem()
    {
        await db.ExecuteAsync(
            """
            CREATE TABLE sv_no_key (id bigint, label text);
            CREATE TABLE sv_extra (id bigint PRIMARY KEY, label text NOT NULL);
            CREATE TABLE sv_wrong (id bigint PRIMARY KEY, label text NOT NULL);
            """);
        await using var host = ConsumerHost.Create(db.ConnectionString, b => b
                .AddHandler<GhostRow, RecordingHandler<GhostRow>>("sv_missing")
                .AddHandler<KeylessRow, RecordingHandler<KeylessRow>>("sv_no_key")
                .AddHandler<OverreachingRow, RecordingHandler<OverreachingRow>>("sv_extra")
                .AddHandler<MistypedRow, RecordingHandler<MistypedRow>>("sv_wrong"),
            o => o.ConsumerName = "sv_all");

        var run = () => RunBrieflyAsync(host);

        var message = (await run.Should().ThrowAsync<PgEventsException>()).Which.Message;
        message.Should().Contain("sv_all");
        message.Should().Contain("\"public\".\"sv_missing\"").And.Contain("does not exist");
        message.Should().Contain("\"public\".\"sv_no_key\"").And.Contain("no primary key").And.Contain("AllowTablesWithoutPrimaryKey");
        message.Should().Match("*OverreachingRow.Nickname*matches no column of \"public\".\"sv_extra\"*its columns are: id, label*");
        message.Should().Match("*MistypedRow.Label is Int32 but column 'label' of \"public\".\"sv_wrong\" is text*");
        message.Split('\n').Count(line => line.StartsWith(" - ", StringComparison.Ordinal)).Should().Be(4, "one line per problem:\n" + message);

        (await SchemaExistsAsync("log_sv_all")).Should().BeFalse("nothing is installed for a consumer that cannot start");
    }

    [Fact]
    public async Task Host_start_fails_with_the_same_PgEventsException_when_a_mapped_table_does_not_exist()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<EventSink>();
        builder.Services.AddPgEvents(o =>
        {
            o.ConnectionString = db.ConnectionString;
            o.ConsumerName = "sv_hosted";
            o.SchemaName = "log_sv_hosted";
        }).AddHandler<GhostRow, RecordingHandler<GhostRow>>("sv_hosted_missing");
        using var host = builder.Build();

        var start = () => host.StartAsync();

        await start.Should().ThrowAsync<PgEventsException>().WithMessage("*\"public\".\"sv_hosted_missing\" does not exist*");
        (await SchemaExistsAsync("log_sv_hosted")).Should().BeFalse();
    }

    [Fact]
    public async Task A_table_without_a_primary_key_is_refused_alone_and_accepted_end_to_end_when_allowed()
    {
        await db.ExecuteAsync("CREATE TABLE sv_keyless (id bigint, label text)");
        void Map(PgEventsBuilder b) => b.AddHandler<KeylessRow, RecordingHandler<KeylessRow>>("sv_keyless");
        await using (var refused = ConsumerHost.Create(db.ConnectionString, Map, o => o.ConsumerName = "sv_keyless_refused"))
        {
            var run = () => RunBrieflyAsync(refused);

            (await run.Should().ThrowAsync<PgEventsException>()).Which.Message.Should()
                .Contain("\"public\".\"sv_keyless\" has no primary key").And.NotContain("does not exist").And.NotContain("matches no column");
        }

        await using var allowed = await ConsumerHost.Create(db.ConnectionString, Map,
            o => { o.ConsumerName = "sv_keyless_allowed"; o.AllowTablesWithoutPrimaryKey = true; }).StartAsync();
        await db.ExecuteAsync("INSERT INTO sv_keyless VALUES (1, 'one'), (1, 'one again')");
        await allowed.Sink.WaitForCountAsync(2, Wait);

        allowed.Sink.Deliveries.Select(d => ((KeylessRow)d.Row!).Label).Should().Equal("one", "one again");
    }

    [Fact]
    public async Task A_row_type_that_is_a_subset_of_the_columns_is_accepted()
    {
        await db.ExecuteAsync("CREATE TABLE sv_wide (id bigint PRIMARY KEY, label text NOT NULL, price numeric, created_at timestamptz NOT NULL DEFAULT now())");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<NarrowRow, RecordingHandler<NarrowRow>>("sv_wide"),
            o => o.ConsumerName = "sv_subset").StartAsync();

        await db.ExecuteAsync("INSERT INTO sv_wide (id, label, price) VALUES (7, 'seven', 7.5)");
        await host.Sink.WaitForCountAsync(1, Wait);

        host.Sink.Deliveries.Should().ContainSingle().Which.Row.Should().Be(new NarrowRow(7));
        host.Running.IsFaulted.Should().BeFalse();
    }

    [Fact]
    public async Task A_property_type_that_cannot_hold_the_column_type_names_the_property_the_column_and_its_type()
    {
        await db.ExecuteAsync("CREATE TABLE sv_typed (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<MistypedRow, RecordingHandler<MistypedRow>>("sv_typed"),
            o => o.ConsumerName = "sv_typed");

        var run = () => RunBrieflyAsync(host);

        (await run.Should().ThrowAsync<PgEventsException>()).Which.Message.Should()
            .Contain("MistypedRow.Label").And.Contain("'label'").And.Contain("is text").And.Contain("\"public\".\"sv_typed\"")
            .And.NotContain("MistypedRow.Id", "a bigint column fits a long property");
    }

    [Fact]
    public async Task Table_and_column_names_with_spaces_and_quotes_work_end_to_end_through_AddPgEvents()
    {
        await db.ExecuteAsync(
            """"
            CREATE TABLE "Order Items" (id bigint PRIMARY KEY, "Unit Price" numeric NOT NULL);
            CREATE TABLE "Bob's ""Quoted"" Table" (id bigint PRIMARY KEY, "Bob's ""Note""" text NOT NULL);
            """");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b
                .AddHandler<OrderItemRow, RecordingHandler<OrderItemRow>>("Order Items")
                .AddHandler<QuotedRow, RecordingHandler<QuotedRow>>(new TableName("public", "Bob's \"Quoted\" Table")),
            o => o.ConsumerName = "sv_quoted").StartAsync();

        await db.ExecuteAsync("""INSERT INTO "Order Items" VALUES (1, 9.99)""");
        await db.ExecuteAsync("""INSERT INTO "Bob's ""Quoted"" Table" VALUES (2, 'it''s "fine"')""");
        await db.ExecuteAsync("""UPDATE "Order Items" SET "Unit Price" = 10.50 WHERE id = 1""");
        await host.Sink.WaitForCountAsync(3, Wait);

        var deliveries = host.Sink.Deliveries;
        deliveries[0].Table.Should().Be("Order Items");
        deliveries[0].Row.Should().Be(new OrderItemRow(1, 9.99m));
        deliveries[1].Table.Should().Be("Bob's \"Quoted\" Table");
        deliveries[1].Row.Should().Be(new QuotedRow(2, "it's \"fine\""));
        deliveries[2].Kind.Should().Be(ChangeKind.Update);
        deliveries[2].OldRow.Should().Be(new OrderItemRow(1, 9.99m));
        deliveries[2].Row.Should().Be(new OrderItemRow(1, 10.50m));
    }

    [Fact]
    public async Task A_consumer_that_does_not_install_refuses_to_start_while_a_mapped_tables_capture_trigger_is_disabled()
    {
        await db.ExecuteAsync("CREATE TABLE sv_disabled (id bigint PRIMARY KEY, label text NOT NULL)");
        await using (var installer = ConsumerHost.Create(db.ConnectionString,
                         b => b.AddHandler<KeylessRow, RecordingHandler<KeylessRow>>("sv_disabled"), o => o.ConsumerName = "sv_disabled"))
        {
            await installer.Consumer.InstallAsync();
        }

        // The test host gives each consumer a schema of its own, whose trigger names carry a hash.
        var trigger = await db.ScalarAsync<string>(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'sv_disabled'::regclass AND tgname LIKE '!pgevents%\\_delete'");
        await db.ExecuteAsync($"ALTER TABLE sv_disabled DISABLE TRIGGER \"{trigger}\"");
        await using var host = ConsumerHost.Create(db.ConnectionString,
            b => b.AddHandler<KeylessRow, RecordingHandler<KeylessRow>>("sv_disabled"),
            o => { o.ConsumerName = "sv_disabled"; o.InstallOnStart = false; });

        var run = () => RunBrieflyAsync(host);

        (await run.Should().ThrowAsync<PgEventsException>()).Which.Message
            .Should().Contain("sv_disabled").And.Contain(trigger).And.Contain("disabled");
    }

    [Fact]
    public async Task A_consumer_that_does_not_install_refuses_to_start_on_an_older_schema_version()
    {
        await db.ExecuteAsync("CREATE TABLE sv_old (id bigint PRIMARY KEY, label text NOT NULL)");
        await db.InstallAsOfVersionAsync(PgEventsSchema.LatestVersion - 1, "log_sv_old");
        await using var host = ConsumerHost.Create(db.ConnectionString,
            b => b.AddHandler<KeylessRow, RecordingHandler<KeylessRow>>("sv_old"),
            o => { o.ConsumerName = "sv_old"; o.InstallOnStart = false; });

        var run = () => RunBrieflyAsync(host);

        (await run.Should().ThrowAsync<PgEventsException>()).Which.Message.Should()
            .Contain($"version {PgEventsSchema.LatestVersion - 1}").And.Contain($"needs version {PgEventsSchema.LatestVersion}").And.Contain("InstallAsync");
    }
}
