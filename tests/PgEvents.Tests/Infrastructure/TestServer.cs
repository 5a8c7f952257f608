using PgEvents.Testing;

namespace PgEvents.Tests.Infrastructure;

/// <summary>
/// One PostgreSQL server for the whole test run; every test class gets its own database on it
/// (see <see cref="DatabaseFixture"/>), so classes run in parallel without sharing state.
/// </summary>
internal static class TestServer
{
    private static readonly Lazy<Task<PostgresServer>> Server = new(() => PostgresServer.StartAsync());

    public static Task<PostgresServer> GetAsync() => Server.Value;
}
