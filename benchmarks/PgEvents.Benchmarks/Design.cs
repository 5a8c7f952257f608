using Npgsql;

namespace PgEvents.Benchmarks;

/// <summary>The four ways of getting changes out of the <c>bench</c> table that are compared.</summary>
internal enum Design
{
    /// <summary>No trigger: the floor.</summary>
    Plain,

    /// <summary>Tracked by PgEvents.</summary>
    PgEvents,

    /// <summary>Baseline (a): a row trigger that NOTIFYs the row as JSON.</summary>
    NotifyRow,

    /// <summary>Baseline (b): a row trigger that inserts into an outbox table read by id, no NOTIFY.</summary>
    EventTable,

    /// <summary>
    /// Diagnostic only, not a usable design: PgEvents with the NOTIFY removed from its commit trigger,
    /// to separate the cost of PgEvents' own writes from the commit serialization NOTIFY brings.
    /// </summary>
    PgEventsWithoutNotify,
}

internal static class Designs
{
    public static readonly Design[] All = [Design.Plain, Design.PgEvents, Design.NotifyRow, Design.EventTable];

    public static string Label(Design design) => design switch
    {
        Design.Plain => "plain",
        Design.PgEvents => "pgevents",
        Design.NotifyRow => "(a) notify-row",
        Design.PgEventsWithoutNotify => "pgevents without NOTIFY",
        _ => "(b) event-table",
    };

    /// <summary>Creates <c>table</c> (id, payload, started, updated_at) and the design's capture.</summary>
    public static async Task CreateAsync(string connectionString, Design design, string table = "bench")
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using (var create = dataSource.CreateCommand(
            $"CREATE TABLE \"{table}\" (id bigint PRIMARY KEY, payload text NOT NULL, started bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"))
        {
            await create.ExecuteNonQueryAsync();
        }

        switch (design)
        {
            case Design.PgEvents or Design.PgEventsWithoutNotify:
                var schema = new PgEventsSchema(dataSource);
                await schema.InstallAsync();
                await schema.TrackTableAsync(new TableName("public", table));
                if (design == Design.PgEventsWithoutNotify)
                {
                    await RemoveNotifyAsync(dataSource);
                }

                break;
            case Design.NotifyRow:
                await ExecuteAsync(dataSource,
                    $$"""
                    CREATE OR REPLACE FUNCTION notify_row() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN PERFORM pg_notify('bench_a', row_to_json(NEW)::text); RETURN NULL; END $$;
                    CREATE TRIGGER notify_row AFTER INSERT OR UPDATE ON "{{table}}" FOR EACH ROW EXECUTE FUNCTION notify_row();
                    """);
                break;
            case Design.EventTable:
                await ExecuteAsync(dataSource,
                    $$"""
                    CREATE TABLE IF NOT EXISTS outbox (id bigserial PRIMARY KEY, table_name text NOT NULL, op text NOT NULL, row_data jsonb NOT NULL);
                    CREATE OR REPLACE FUNCTION outbox_row() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN INSERT INTO outbox (table_name, op, row_data) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW)); RETURN NULL; END $$;
                    CREATE TRIGGER outbox_row AFTER INSERT OR UPDATE ON "{{table}}" FOR EACH ROW EXECUTE FUNCTION outbox_row();
                    """);
                break;
        }
    }

    /// <summary>Rewrites the installed commit trigger function without its pg_notify call.</summary>
    private static async Task RemoveNotifyAsync(NpgsqlDataSource dataSource)
    {
        await using var read = dataSource.CreateCommand("SELECT pg_get_functiondef('pgevents.assign_position()'::regprocedure)");
        var definition = (string)(await read.ExecuteScalarAsync())!;
        var withoutNotify = string.Join('\n', definition.Split('\n').Where(line => !line.Contains("pg_notify", StringComparison.Ordinal)));
        if (withoutNotify == definition)
        {
            throw new InvalidOperationException("The commit trigger function no longer calls pg_notify on a line of its own; update the diagnostic.");
        }

        await using var replace = dataSource.CreateCommand(withoutNotify);
        await replace.ExecuteNonQueryAsync();
    }

    /// <summary>Runs statements one by one (VACUUM refuses to share a round trip).</summary>
    public static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql)
    {
        foreach (var statement in sql.Split(";\n", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            await using var command = dataSource.CreateCommand(statement);
            command.CommandTimeout = 0;
            await command.ExecuteNonQueryAsync();
        }
    }
}
