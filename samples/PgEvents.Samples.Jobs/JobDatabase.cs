using Npgsql;

namespace PgEvents.Samples.Jobs;

/// <summary>The database that holds the job queue (here the same one PgEvents captures).</summary>
public sealed class JobDatabase(NpgsqlDataSource dataSource)
{
    public NpgsqlDataSource DataSource { get; } = dataSource;
}
