using Npgsql;

namespace PgEvents.Samples.Sync;

/// <summary>
/// The replica's connection pool, in a type of its own so that registering it cannot be confused
/// with any <see cref="NpgsqlDataSource"/> of the source database.
/// </summary>
/// <param name="connectionString">Connection string of the replica database.</param>
public sealed class ReplicaDatabase(string connectionString) : IAsyncDisposable, IDisposable
{
    /// <summary>Opens connections to the replica.</summary>
    public NpgsqlDataSource DataSource { get; } = NpgsqlDataSource.Create(connectionString);

    /// <inheritdoc />
    public ValueTask DisposeAsync() => DataSource.DisposeAsync();

    /// <inheritdoc />
    public void Dispose() => DataSource.Dispose();
}
