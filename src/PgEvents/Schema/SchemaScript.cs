using System.Globalization;
using System.Reflection;
using System.Text.RegularExpressions;

namespace PgEvents;

/// <summary>One versioned SQL script from <c>sql/</c>, embedded into the library.</summary>
internal sealed record SchemaScript(int Version, string Name, string Text)
{
    private const string ResourcePrefix = "PgEvents.Sql.";

    private static readonly Lazy<IReadOnlyList<SchemaScript>> All = new(Load);

    private static readonly Regex Placeholder = new("__(?:SCHEMA|TXKEY|COMMITLOCK|SLEEPCLASS|SLEEPKEY|SNAPSHOTKEY)__", RegexOptions.CultureInvariant);

    /// <summary>Every embedded script, ordered by version.</summary>
    public static IReadOnlyList<SchemaScript> Embedded => All.Value;

    /// <summary>The schema version this library installs.</summary>
    public static int LatestVersion => Embedded[^1].Version;

    /// <summary>The script text with the installation's names substituted.</summary>
    public string Render(SchemaSettings settings)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["__SCHEMA__"] = settings.Schema,
            ["__TXKEY__"] = settings.TransactionKey,
            ["__COMMITLOCK__"] = settings.CommitLockClass.ToString(CultureInfo.InvariantCulture),
            ["__SLEEPCLASS__"] = SchemaSettings.AdvisoryLockClass.ToString(CultureInfo.InvariantCulture),
            ["__SLEEPKEY__"] = settings.DoorbellKey.ToString(CultureInfo.InvariantCulture),
            ["__SNAPSHOTKEY__"] = settings.SnapshotKey.ToString(CultureInfo.InvariantCulture),
        };

        // One pass: a value is never searched again, so a schema named like a placeholder stays itself.
        return Placeholder.Replace(Text, match => values[match.Value]);
    }

    private static List<SchemaScript> Load()
    {
        var assembly = typeof(SchemaScript).Assembly;
        var scripts = new List<SchemaScript>();
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal) || !resource.EndsWith(".sql", StringComparison.Ordinal))
            {
                continue;
            }

            var name = resource[ResourcePrefix.Length..];
            var underscore = name.IndexOf('_', StringComparison.Ordinal);
            if (underscore <= 0 || !int.TryParse(name.AsSpan(0, underscore), NumberStyles.None, CultureInfo.InvariantCulture, out var version))
            {
                throw new InvalidOperationException($"Embedded script '{name}' is not named NNN_description.sql.");
            }

            scripts.Add(new SchemaScript(version, name, Read(assembly, resource)));
        }

        scripts.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (var i = 0; i < scripts.Count; i++)
        {
            if (scripts[i].Version != i + 1)
            {
                throw new InvalidOperationException($"Embedded scripts must be numbered 1..N without gaps; found '{scripts[i].Name}'.");
            }
        }

        return scripts;
    }

    private static string Read(Assembly assembly, string resource)
    {
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"Embedded script '{resource}' is missing.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
