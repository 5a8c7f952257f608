using Npgsql;

namespace PgEvents.Benchmarks;

/// <summary>The four ways of getting changes out of the <c>bench</c> table that are compared.</summary>
internal enum Design
{
    /// <summary>No trigger: the floor every other design is measured against.</summary>
    Plain,

    /// <summary>The table tracked by PgEvents.</summary>
    PgEvents,

    /// <summary>Baseline (a): a row trigger that NOTIFYs the whole row as JSON.</summary>
    NotifyRow,

    /// <summary>Baseline (b): a row trigger that appends to an outbox table read by id, no NOTIFY.</summary>
    EventTable,
}

/// <summary>
/// The SQL that sets up each design. Statements are fixed text; the only spliced parts are
/// identifiers, always passed through <see cref="Quote"/> and always the program's own constants.
/// </summary>
internal static class Designs
{
    /// <summary>The table every scenario writes to.</summary>
    public const string Table = "bench";

    /// <summary>The channel of baseline (a).</summary>
    public const string NotifyChannel = "bench_a";

    public static IReadOnlyList<Design> All { get; } = [Design.Plain, Design.PgEvents, Design.NotifyRow, Design.EventTable];

    public static string Label(Design design) => design switch
    {
        Design.Plain => "plain",
        Design.PgEvents => "pgevents",
        Design.NotifyRow => "(a) notify-row",
        Design.EventTable => "(b) event-table",
        _ => throw new ArgumentOutOfRangeException(nameof(design)),
    };

    /// <summary>The <c>n</c>-th table of a multi-table scenario: <c>bench</c>, <c>bench_1</c>, …</summary>
    public static string TableName(int index) =>
        index == 0 ? Table : Table + "_" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A quoted SQL identifier (doubling embedded quotes), like PostgreSQL's <c>quote_ident</c>.</summary>
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>
    /// Creates the tables and the design's capture. <c>started</c> carries the writer's
    /// <c>Stopwatch</c> timestamp so a receiver can compute latency from the row alone.
    /// </summary>
    public static async Task CreateAsync(string connectionString, Design design, int tables = 1)
    {
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        for (var t = 0; t < tables; t++)
        {
            await ExecuteAsync(dataSource,
                $"CREATE TABLE {Quote(TableName(t))} (id bigint PRIMARY KEY, payload text NOT NULL, " +
                "started bigint NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now())");
        }

        switch (design)
        {
            case Design.Plain:
                break;

            case Design.PgEvents:
                var schema = new PgEventsSchema(dataSource, new PgEventsSchemaOptions { SchemaName = "pgevents", NotificationChannel = "pgevents" });
                await schema.InstallAsync();
                for (var t = 0; t < tables; t++)
                {
                    await schema.TrackTableAsync(new TableName("public", TableName(t)));
                }

                break;

            case Design.NotifyRow:
                // The channel name is a constant literal: the classic design as people write it.
                await ExecuteAsync(dataSource,
                    """
                    CREATE FUNCTION "bench_notify_row"() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        PERFORM pg_notify('bench_a', row_to_json(NEW)::text);
                        RETURN NULL;
                    END $$
                    """);
                for (var t = 0; t < tables; t++)
                {
                    await ExecuteAsync(dataSource,
                        $"CREATE TRIGGER \"bench_notify_row\" AFTER INSERT OR UPDATE ON {Quote(TableName(t))} " +
                        "FOR EACH ROW EXECUTE FUNCTION \"bench_notify_row\"()");
                }

                break;

            case Design.EventTable:
                await ExecuteAsync(dataSource,
                    "CREATE TABLE \"outbox\" (id bigserial PRIMARY KEY, table_name text NOT NULL, op text NOT NULL, row_data jsonb NOT NULL)");
                await ExecuteAsync(dataSource,
                    """
                    CREATE FUNCTION "bench_outbox_row"() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        INSERT INTO "outbox" (table_name, op, row_data) VALUES (TG_TABLE_NAME, TG_OP, to_jsonb(NEW));
                        RETURN NULL;
                    END $$
                    """);
                for (var t = 0; t < tables; t++)
                {
                    await ExecuteAsync(dataSource,
                        $"CREATE TRIGGER \"bench_outbox_row\" AFTER INSERT OR UPDATE ON {Quote(TableName(t))} " +
                        "FOR EACH ROW EXECUTE FUNCTION \"bench_outbox_row\"()");
                }

                break;

            default:
                throw new ArgumentOutOfRangeException(nameof(design));
        }
    }

    /// <summary>Runs one statement without a time limit (bulk loads and VACUUM can take minutes); values bind to $1, $2, ….</summary>
    public static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql, params object[] values)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await ExecuteAsync(connection, sql, values);
    }

    /// <summary>Runs one statement on an open connection without a time limit.</summary>
    public static async Task ExecuteAsync(NpgsqlConnection connection, string sql, params object[] values)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.CommandTimeout = 0;
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value });
        }

        await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Freezes the state a measurement starts from: statistics current (a bulk load would otherwise
    /// trigger autoanalyze and a plan change mid-measurement) and dirty pages written, so a
    /// checkpoint caused by the preparation does not land inside the measurement.
    /// </summary>
    public static async Task SettleAsync(NpgsqlDataSource dataSource, params string[] tables)
    {
        foreach (var table in tables)
        {
            await ExecuteAsync(dataSource, "VACUUM (ANALYZE) " + table);
        }

        await ExecuteAsync(dataSource, "CHECKPOINT");
    }
}
