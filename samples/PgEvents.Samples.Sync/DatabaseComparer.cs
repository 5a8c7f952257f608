using System.Globalization;
using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>Compares the tables of the source and the replica row by row.</summary>
public static class DatabaseComparer
{
    private const int MaxReportedDifferences = 5;

    /// <summary>Compares <c>customers</c> in both databases.</summary>
    /// <param name="source">The source database.</param>
    /// <param name="replica">The replica database.</param>
    /// <param name="cancellationToken">Cancels the queries.</param>
    /// <returns>The comparison.</returns>
    public static Task<TableComparison> CompareCustomersAsync(NpgsqlDataSource source, NpgsqlDataSource replica, CancellationToken cancellationToken) =>
        CompareAsync("customers", "SELECT id, name, email, created_at FROM customers ORDER BY id", source, replica, cancellationToken);

    /// <summary>Compares <c>orders</c> in both databases.</summary>
    /// <param name="source">The source database.</param>
    /// <param name="replica">The replica database.</param>
    /// <param name="cancellationToken">Cancels the queries.</param>
    /// <returns>The comparison.</returns>
    public static Task<TableComparison> CompareOrdersAsync(NpgsqlDataSource source, NpgsqlDataSource replica, CancellationToken cancellationToken) =>
        CompareAsync("orders", "SELECT id, customer_id, amount, status, updated_at FROM orders ORDER BY id", source, replica, cancellationToken);

    /// <summary>Counts the rows of the replica whose id was only ever written by rolled-back transactions.</summary>
    /// <param name="replica">The replica database.</param>
    /// <param name="customerIds">Customer ids of rolled-back transactions.</param>
    /// <param name="orderIds">Order ids of rolled-back transactions.</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>How many such rows exist; anything but zero means a rolled-back change was delivered.</returns>
    public static async Task<long> CountRolledBackRowsAsync(
        NpgsqlDataSource replica, IReadOnlyCollection<long> customerIds, IReadOnlyCollection<long> orderIds, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(replica);
        await using var command = replica.CreateCommand(
            "SELECT (SELECT count(*) FROM customers WHERE id = ANY(@customers)) + (SELECT count(*) FROM orders WHERE id = ANY(@orders))");
        command.Parameters.AddWithValue("customers", customerIds.ToArray());
        command.Parameters.AddWithValue("orders", orderIds.ToArray());
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    private static async Task<TableComparison> CompareAsync(
        string table, string query, NpgsqlDataSource source, NpgsqlDataSource replica, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(replica);
        var expected = await ReadAsync(source, query, cancellationToken);
        var actual = await ReadAsync(replica, query, cancellationToken);

        // Both lists are ordered by id: walk them side by side.
        var differences = new List<string>();
        var differing = 0;
        int s = 0, r = 0;
        while (s < expected.Count || r < actual.Count)
        {
            var sourceId = s < expected.Count ? expected[s].Id : long.MaxValue;
            var replicaId = r < actual.Count ? actual[r].Id : long.MaxValue;
            string? difference = null;
            if (sourceId < replicaId)
            {
                difference = $"{table} id {sourceId}: missing in replica; source has [{expected[s++].Text}]";
            }
            else if (replicaId < sourceId)
            {
                difference = $"{table} id {replicaId}: not in source; replica has [{actual[r++].Text}]";
            }
            else
            {
                if (expected[s].Text != actual[r].Text)
                {
                    difference = $"{table} id {sourceId}: source [{expected[s].Text}] but replica [{actual[r].Text}]";
                }

                s++;
                r++;
            }

            if (difference is not null && ++differing <= MaxReportedDifferences)
            {
                differences.Add(difference);
            }
        }

        return new TableComparison(table, expected.Count, actual.Count, differing, differences);
    }

    private static async Task<List<(long Id, string Text)>> ReadAsync(NpgsqlDataSource database, string query, CancellationToken cancellationToken)
    {
        var rows = new List<(long, string)>();
        await using var command = database.CreateCommand(query);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var values = new string[reader.FieldCount];
        while (await reader.ReadAsync(cancellationToken))
        {
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = Render(reader.GetValue(i));
            }

            rows.Add((reader.GetInt64(0), string.Join(" | ", values)));
        }

        return rows;
    }

    // timestamptz arrives as a UTC DateTime whatever the session time zone, so two servers with
    // different TimeZone settings still render identically; "O" keeps the microseconds.
    private static string Render(object value) => value switch
    {
        DBNull => "NULL",
        DateTime time => time.ToString("O", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}
