using Npgsql;

namespace PgEvents;

/// <summary>
/// Records which tables a consumer reads (<c>sql/009_subscriptions.sql</c>): its mapped tables, and
/// the tables it no longer maps, retired up to the head of the log at this moment.
/// </summary>
internal sealed class SubscriptionStore(SchemaSettings settings, string consumerName)
{
    private readonly string _subscribeSql = $"SELECT {settings.Schema}.subscribe(@consumer, @schemas, @tables)";

    /// <summary>Records <paramref name="tables"/> as the subscription; the consumer must be registered (its cursor loaded).</summary>
    public async Task RecordAsync(NpgsqlConnection connection, IReadOnlyCollection<TableName> tables, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(_subscribeSql, connection);
        command.Parameters.AddWithValue("consumer", consumerName);
        command.Parameters.AddWithValue("schemas", tables.Select(t => t.Schema).ToArray());
        command.Parameters.AddWithValue("tables", tables.Select(t => t.Name).ToArray());
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
