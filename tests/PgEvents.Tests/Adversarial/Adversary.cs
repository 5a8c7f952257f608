using System.Text.Json;
using Npgsql;

namespace PgEvents.Tests.Adversarial;

/// <summary>Small helpers shared by the adversarial test classes: forced interleavings on real connections.</summary>
internal static class Adversary
{
    public static async Task ExecAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>The low 32 bits of the connection's current transaction id (assigning one if needed).</summary>
    public static async Task<uint> Xid32Async(NpgsqlConnection connection) =>
        (uint)(await ScalarAsync<long>(connection, "SELECT pg_current_xact_id()::text::bigint & 4294967295"));

    public static IEnumerable<string> Labels(IEnumerable<CapturedEvent> events) =>
        events.Select(e =>
        {
            var json = e.RowJson ?? e.OldRowJson;
            if (json is null)
            {
                return $"{e.Kind}:{e.Table}";
            }

            var row = JsonDocument.Parse(json).RootElement;
            return $"{e.Kind}:{row.GetProperty("value").GetString()}";
        });
}
