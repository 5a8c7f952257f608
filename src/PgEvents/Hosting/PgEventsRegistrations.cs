namespace PgEvents;

/// <summary>
/// What <c>AddPgEvents</c> has registered in one service collection: the registration name of every
/// consumer, and which of them take their connections from a data source the host supplies. Kept as
/// an instance in the collection so that repeated calls find it and register nothing twice.
/// </summary>
internal sealed class PgEventsRegistrations
{
    private readonly List<string> _names = [];
    private readonly HashSet<string> _hostDataSources = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Names => _names;

    /// <summary>Records <paramref name="name"/>; false when it was registered before.</summary>
    public bool Add(string name)
    {
        if (_names.Contains(name, StringComparer.Ordinal))
        {
            return false;
        }

        _names.Add(name);
        return true;
    }

    public void UseHostDataSource(string name) => _hostDataSources.Add(name);

    public bool UsesHostDataSource(string name) => _hostDataSources.Contains(name);

    /// <summary>How messages name a registration: the unnamed one has no name of its own.</summary>
    public static string Describe(string name) =>
        name.Length == 0 ? "the PgEvents consumer registered without a name" : $"the PgEvents consumer registered as '{name}'";
}
