using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Adversarial;

/// <summary>
/// Second adversarial pass on identifiers: names with quotes, spaces, capitals, and names that
/// collide with what the capture functions use (the alias pgevents_removed, r, trigger names).
/// </summary>
public sealed class CaptureSecondPassIdentifierTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task A_pgevents_schema_name_with_a_single_quote_is_refused_up_front_or_installs()
    {
        // SqlIdentifier.Validate accepts it; the scripts put the quoted identifier into SQL string
        // literals ('"o'brien".capture_row'::regproc, EXECUTE format('INSERT INTO "o'brien".events …')),
        // so installation fails with a syntax error (a name containing $fn$ ends a function body).
        PgEventsSchema schema;
        try
        {
            schema = new PgEventsSchema(db.DataSource, new PgEventsSchemaOptions { SchemaName = "o'brien" });
        }
        catch (ArgumentException)
        {
            return;
        }

        var install = () => schema.InstallAsync();

        await install.Should().NotThrowAsync<PostgresException>("a schema name the options accept must install");
    }

    [Fact]
    public async Task Tables_columns_and_schemas_with_quotes_spaces_capitals_and_colliding_names_are_captured_whole_in_a_quoted_pgevents_schema()
    {
        var schema = await db.InstallAsync("My \"Events\" Log", "second_pass_odd");
        await db.ExecuteAsync(
            """
            CREATE SCHEMA "My Schema";
            CREATE TABLE "My Schema"."Order Items" ("Id" int, "pgevents_removed" text, r text, "Line No" int, PRIMARY KEY ("Id", "Line No")) PARTITION BY LIST ("Line No");
            CREATE TABLE "My Schema"."Order Items 1" PARTITION OF "My Schema"."Order Items" FOR VALUES IN (1);
            CREATE TABLE "My Schema"."Order Items 2" PARTITION OF "My Schema"."Order Items" FOR VALUES IN (2);
            CREATE TABLE "!pgevents_insert" ("Id" int PRIMARY KEY, v text);
            CREATE TABLE "!pgevents_insert child" () INHERITS ("!pgevents_insert");
            """);
        var items = new TableName("My Schema", "Order Items");
        var bang = new TableName("public", "!pgevents_insert");
        await schema.TrackTableAsync(items);
        // The default installation's row trigger is named "!pgevents_insert", like this table.
        var defaultSchema = await db.InstallAsync();
        await defaultSchema.TrackTableAsync(bang);
        var drain = await LogDrain.CaughtUpAsync(db.DataSource, schema);
        var defaultDrain = await LogDrain.CaughtUpAsync(db.DataSource, defaultSchema);

        await db.ExecuteAsync(
            """
            INSERT INTO "My Schema"."Order Items" VALUES (1, 'a', 'x', 1), (1, 'b', 'y', 2), (2, 'c', 'z', 1);
            UPDATE "My Schema"."Order Items" SET "Line No" = 2, r = 'moved' WHERE "Id" = 2;
            TRUNCATE "My Schema"."Order Items 1";
            INSERT INTO "!pgevents_insert" VALUES (1, 'parent');
            INSERT INTO "!pgevents_insert child" VALUES (2, 'child'), (3, 'child 2');
            TRUNCATE ONLY "!pgevents_insert";
            UPDATE "!pgevents_insert" SET v = 'changed' WHERE "Id" = 2;
            TRUNCATE "!pgevents_insert child";
            INSERT INTO "!pgevents_insert child" VALUES (4, 'last');
            """);

        var events = await drain.DrainAsync();
        var itemsReplica = new ReplicaModel(items, ["Id", "Line No"], ["Id", "pgevents_removed", "r", "Line No"]);
        itemsReplica.ApplyAll(events);
        await itemsReplica.ShouldEqualSourceAsync(db, "every change of the partitions, whole rows, under \"Order Items\"");
        var bangReplica = new ReplicaModel(bang, ["Id"], ["Id", "v"]);
        bangReplica.ApplyAll(await defaultDrain.DrainAsync());
        await bangReplica.ShouldEqualSourceAsync(db, "the child's changes arrive under the parent's odd name");
        await schema.EnsureCapturedAsync([items]);
        await defaultSchema.EnsureCapturedAsync([bang]);
    }
}
