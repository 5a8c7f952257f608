using Npgsql;

namespace PgEvents.Benchmarks;

/// <summary>Writes the events a consumer later catches up on.</summary>
internal static class Backlog
{
    /// <summary>
    /// A payload of exactly <paramref name="length"/> characters that does not compress (random
    /// base64): a repeated character would be squeezed by TOAST and flatter large rows.
    /// </summary>
    public static string Payload(int length)
    {
        var bytes = new byte[(length * 3 / 4) + 3];
        new Random(length).NextBytes(bytes);
        return Convert.ToBase64String(bytes)[..length];
    }

    /// <summary>
    /// <paramref name="events"/> rows with ids from <paramref name="firstId"/>, in transactions of
    /// <paramref name="perTransaction"/> rows; with several tables every transaction writes an equal
    /// share to each, so consecutive events alternate between handler registrations.
    /// </summary>
    public static async Task WriteAsync(string connectionString, long firstId, long events, int perTransaction, int tables, string payload)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var perTable = Math.Max(1, perTransaction / tables);
        var next = firstId;
        var end = firstId + events;
        while (next < end)
        {
            await using var batch = new NpgsqlBatch(connection) { Timeout = 0 };
            for (var t = 0; t < tables && next < end; t++)
            {
                var count = Math.Min(perTable, end - next);
                var insert = new NpgsqlBatchCommand(
                    $"INSERT INTO {Designs.Quote(Designs.TableName(t))} (id, payload) SELECT g, $3 FROM generate_series($1::bigint, $2::bigint) g");
                insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = next });
                insert.Parameters.Add(new NpgsqlParameter<long> { TypedValue = next + count - 1 });
                insert.Parameters.Add(new NpgsqlParameter<string> { TypedValue = payload });
                batch.BatchCommands.Add(insert);
                next += count;
            }

            // A multi-statement batch without an explicit transaction runs as one implicit transaction.
            await batch.ExecuteNonQueryAsync();
        }
    }

    /// <summary>
    /// One row per transaction, the shape of OLTP traffic. A procedure commits each row itself, and
    /// synchronous_commit is off for this session only, so preparing the backlog does not take one
    /// disk flush per event (the backlog's write speed is not what is measured).
    /// </summary>
    public static async Task WriteSingleRowTransactionsAsync(string connectionString, long firstId, long events, string payload)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await Designs.ExecuteAsync(connection,
            $"""
            CREATE OR REPLACE PROCEDURE "bench_single_row_backlog"(p_from bigint, p_to bigint, p_payload text) LANGUAGE plpgsql AS $$
            BEGIN
                FOR i IN p_from .. p_to LOOP
                    INSERT INTO {Designs.Quote(Designs.Table)} (id, payload) VALUES (i, p_payload);
                    COMMIT;
                END LOOP;
            END $$
            """);
        await Designs.ExecuteAsync(connection, "SET synchronous_commit = off");
        for (var from = firstId; from < firstId + events; from += 10_000)
        {
            var to = Math.Min(from + 10_000, firstId + events) - 1;
            await Designs.ExecuteAsync(connection, "CALL \"bench_single_row_backlog\"($1, $2, $3)", from, to, payload);
        }
    }
}
