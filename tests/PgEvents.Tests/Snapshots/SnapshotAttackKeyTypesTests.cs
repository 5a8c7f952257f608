using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Snapshots;

/// <summary>
/// Primary keys of many types, read in chunks of three while every row is updated again and again: the
/// key saved as text must cast back to the same position, and the keys of later events must be read
/// back into the key's type, for every type a primary key can have.
/// </summary>
public sealed class SnapshotAttackKeyTypesTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Theory]
    [InlineData("numeric", "numeric", "SELECT g / 7.0 FROM generate_series(-10, 9) g")]
    [InlineData("uuid", "uuid", "SELECT md5(g::text)::uuid FROM generate_series(1, 20) g")]
    [InlineData("bytea", "bytea", "SELECT '\\x00'::bytea || int4send(g * 1000003) FROM generate_series(1, 20) g")]
    [InlineData("float8", "float8", "SELECT g * 0.1::float8 FROM generate_series(-8, 8) g UNION ALL VALUES ('NaN'::float8), ('Infinity'), ('-Infinity')")]
    [InlineData("icu", "text COLLATE \"und-x-icu\"", "SELECT unnest(ARRAY['a', 'B', 'b', 'é', 'e', 'E', 'z''q', 'a b', 'ab', 'Ab', '_x', '1', '10', '2', 'ß', 'ss', 'Æ', 'ae', 'x\"y', ' lead'])")]
    [InlineData("nondeterministic", "text COLLATE snap_ci", "SELECT unnest(ARRAY['a', 'B', 'c', 'É', 'f', 'G', 'h', 'i j', 'K', 'l', 'M', 'n', 'O', 'p', 'Q', 'r', 'S', 't', 'U', 'v'])")]
    [InlineData("citext", "citext", "SELECT unnest(ARRAY['a', 'B', 'c', 'É', 'f', 'G', 'h', 'i j', 'K', 'l', 'M', 'n', 'O', 'p', 'Q', 'r', 'S', 't', 'U', 'v'])")]
    [InlineData("interval", "interval", "SELECT g * interval '1 day 3 hours 7 seconds' - interval '1 month' FROM generate_series(1, 20) g")]
    [InlineData("enum", "snap_other.mood", "SELECT unnest(enum_range(NULL::snap_other.mood))")]
    [InlineData("bpchar", "character(6)", "SELECT lpad(g::text, 3) FROM generate_series(1, 20) g")]
    [InlineData("composite", "snap_pair", "SELECT ROW(g % 4, 'v ' || g)::snap_pair FROM generate_series(1, 20) g")]
    [InlineData("array", "int[]", "SELECT ARRAY[g % 3, g] FROM generate_series(1, 20) g")]
    [InlineData("ts", "timestamp", "SELECT timestamp '1999-12-31 23:59:59.999999' + g * interval '1 day 1 microsecond' FROM generate_series(1, 20) g")]
    public async Task Every_row_of_a_table_keyed_by_this_type_is_delivered_once_in_order_under_concurrent_updates(string name, string type, string keys)
    {
        await db.OnceAsync("types", async () =>
        {
            await db.ExecuteAsync(
                """
                CREATE EXTENSION IF NOT EXISTS citext;
                CREATE COLLATION snap_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
                CREATE SCHEMA snap_other;
                CREATE TYPE snap_other.mood AS ENUM ('sad', 'ok', 'happy', 'très "happy"', 'x y');
                CREATE TYPE snap_pair AS (a int, b text);
                """);
            return "done";
        });
        var table = "snap_key_" + name;
        await db.ExecuteAsync($"CREATE TABLE {table} (k {type} PRIMARY KEY, version int NOT NULL DEFAULT 1); INSERT INTO {table} (k) {keys}");
        var rows = await db.ScalarAsync<long>($"SELECT count(*) FROM {table}");
        var replica = new SnapshotReplica { KeyColumns = ["k"] };
        await using var host = ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<System.Text.Json.JsonElement, SnapshotReplicaHandler>(table),
            o =>
            {
                o.ConsumerName = table;
                o.InitialSnapshot = true;
                o.SnapshotChunkSize = 3;
            },
            services: s => s.AddSingleton(replica));

        using var stop = new CancellationTokenSource();
        var updates = Task.Run(async () =>
        {
            await using var connection = new NpgsqlConnection(db.ConnectionString);
            await connection.OpenAsync();
            while (!stop.IsCancellationRequested)
            {
                await using var command = new NpgsqlCommand(
                    $"UPDATE {table} SET version = version + 1 WHERE k = (SELECT k FROM {table} ORDER BY random() LIMIT 1)", connection);
                await command.ExecuteNonQueryAsync();
            }
        });
        await host.StartAsync();
        await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots.Count == 1 && s.Snapshots[0].CompletedAt is not null,
            s => string.Join("; ", s.Snapshots), TimeSpan.FromSeconds(20));
        await stop.CancelAsync();
        await updates;

        var status = await Eventually.UntilAsync(
            () => host.Consumer.GetStatusAsync(), s => s.Snapshots[0].IsDelivered && s.LagEvents == 0,
            s => string.Join("; ", s.Snapshots), TimeSpan.FromSeconds(20));
        status.Snapshots[0].Error.Should().BeNull();
        status.Snapshots[0].RowsRead.Should().Be(rows, "each row is read exactly once");
        await replica.ShouldMatchAsync(db.DataSource, table);
        replica.Violations.Should().BeEmpty();
    }
}
