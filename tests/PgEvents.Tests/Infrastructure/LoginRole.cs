using Npgsql;

namespace PgEvents.Tests.Infrastructure;

/// <summary>
/// A login role of a test's own, dropped on dispose: privileges can be granted to it and revoked from
/// it without touching the superuser every other test connects as.
/// </summary>
internal sealed class LoginRole : IAsyncDisposable
{
    private readonly DatabaseFixture _db;

    private LoginRole(DatabaseFixture db, string name, string password)
    {
        _db = db;
        Name = name;
        Password = password;
    }

    public string Name { get; }

    /// <summary>The role name as a quoted identifier, for the DDL that cannot take parameters.</summary>
    public string Quoted => SqlIdentifier.Quote(Name);

    public string Password { get; }

    public static async Task<LoginRole> CreateAsync(DatabaseFixture db, string prefix)
    {
        var role = new LoginRole(db, $"{prefix}_{Guid.NewGuid().ToString("N")[..8]}", Guid.NewGuid().ToString("N"));

        // CREATE ROLE takes no parameters: the server quotes the name and the password literal.
        var create = await db.ScalarAsync<string>("SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', @name, @password)",
            ("name", role.Name), ("password", role.Password));
        await db.ExecuteAsync(create);
        return role;
    }

    /// <summary>Connects to the fixture's database as this role.</summary>
    public string ConnectionString(string applicationName) =>
        new NpgsqlConnectionStringBuilder(_db.ConnectionString) { Username = Name, Password = Password, ApplicationName = applicationName }.ConnectionString;

    public async ValueTask DisposeAsync()
    {
        // Its privileges live in this database only; DROP OWNED revokes them so the role can go.
        await _db.ExecuteAsync($"DROP OWNED BY {Quoted}");
        await _db.ExecuteAsync($"DROP ROLE {Quoted}");
    }
}
