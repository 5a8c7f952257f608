namespace PgEvents.Testing;

/// <summary>How <see cref="PostgresServer.StartAsync"/> starts a server.</summary>
public sealed class PostgresServerOptions
{
    /// <summary>
    /// Keep fsync and synchronous commit on. Off by default: throwaway servers trade crash safety
    /// for speed. Turn it on when measuring what production would see.
    /// </summary>
    public bool Durable { get; set; }

    /// <summary>
    /// An explicit connection string that wins over the environment variable, Docker and local
    /// binaries. Null by default.
    /// </summary>
    public string? ConnectionString { get; set; }

    /// <summary>The image used when a Docker engine is reachable. Default <c>postgres:16-alpine</c>.</summary>
    public string ContainerImage { get; set; } = "postgres:16-alpine";

    /// <summary>
    /// Directory holding <c>initdb</c> and <c>pg_ctl</c>. When null, PATH is searched, then
    /// <c>/usr/lib/postgresql/*/bin</c> (newest version first).
    /// </summary>
    public string? BinDirectory { get; set; }

    /// <summary>Extra server settings (<c>name = value</c>) for a local cluster or a container.</summary>
    public IDictionary<string, string> Settings { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Whether to probe for a Docker engine at all. Default true.</summary>
    public bool AllowDocker { get; set; } = true;
}
