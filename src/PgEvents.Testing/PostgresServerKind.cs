namespace PgEvents.Testing;

/// <summary>Where a <see cref="PostgresServer"/> runs.</summary>
public enum PostgresServerKind
{
    /// <summary>An existing server named by <see cref="PostgresServer.ConnectionEnvironmentVariable"/>.</summary>
    External,

    /// <summary>A Docker container started through Testcontainers.</summary>
    Container,

    /// <summary>A temporary cluster started from the PostgreSQL binaries installed on this machine.</summary>
    LocalCluster,
}
