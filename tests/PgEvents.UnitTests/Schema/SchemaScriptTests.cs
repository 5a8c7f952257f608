using System.Globalization;
using System.Text.RegularExpressions;

namespace PgEvents.UnitTests.Schema;

public sealed partial class SchemaScriptTests
{
    [GeneratedRegex("__[A-Z]+__")]
    private static partial Regex Placeholder();

    [GeneratedRegex("^[0-9]{3}_[a-z0-9_]+\\.sql$")]
    private static partial Regex ScriptName();

    [Fact]
    public void The_embedded_scripts_are_numbered_one_to_n_in_order()
    {
        var scripts = SchemaScript.Embedded;

        scripts.Should().NotBeEmpty();
        scripts.Select(s => s.Version).Should().Equal(Enumerable.Range(1, scripts.Count));
        scripts.Should().OnlyContain(s => ScriptName().IsMatch(s.Name) && s.Name.StartsWith(s.Version.ToString("D3", CultureInfo.InvariantCulture) + "_", StringComparison.Ordinal));
        SchemaScript.LatestVersion.Should().Be(scripts.Count);
    }

    [Fact]
    public void Every_script_is_embedded_with_its_text()
    {
        SchemaScript.Embedded.Should().OnlyContain(s => s.Text.Length > 0);
        SchemaScript.Embedded[0].Text.Should().Contain("__SCHEMA__", "the first script creates the schema");
    }

    [Theory]
    [InlineData("pgevents")]
    [InlineData("Event Log")]
    [InlineData("with\"quote")]
    public void Rendering_leaves_no_placeholder_in_any_script(string schema)
    {
        var settings = new SchemaSettings(schema, "pgevents");

        foreach (var script in SchemaScript.Embedded)
        {
            var rendered = script.Render(settings);

            Placeholder().Matches(rendered).Select(m => m.Value).Should().BeEmpty("{0} must be fully rendered", script.Name);
            rendered.Should().Contain(settings.Schema);
        }
    }

    [Fact]
    public void Render_substitutes_each_placeholder_with_the_installation_value()
    {
        var settings = new SchemaSettings("Event Log", "pgevents");
        var script = new SchemaScript(1, "001_test.sql", "__SCHEMA__|__TXKEY__|__COMMITLOCK__|__SLEEPCLASS__|__SLEEPKEY__|__SNAPSHOTKEY__|__TXKEY___truncating");

        var rendered = script.Render(settings);

        rendered.Should().Be(string.Join('|',
            "\"Event Log\"",
            settings.TransactionKey,
            settings.CommitLockClass.ToString(CultureInfo.InvariantCulture),
            SchemaSettings.AdvisoryLockClass.ToString(CultureInfo.InvariantCulture),
            settings.DoorbellKey.ToString(CultureInfo.InvariantCulture),
            settings.SnapshotKey.ToString(CultureInfo.InvariantCulture),
            settings.TransactionKey + "_truncating"));
    }

    [Fact]
    public void Negative_lock_keys_render_with_an_ASCII_minus_whatever_the_culture()
    {
        var settings = Enumerable.Range(0, 100).Select(i => new SchemaSettings("s" + i, "pgevents")).First(s => s.DoorbellKey < 0);
        var script = new SchemaScript(1, "001_test.sql", "__SLEEPKEY__");
        var culture = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = new CultureInfo("sv-SE");
            CultureInfo.CurrentCulture.NumberFormat.NegativeSign.Should().Be("\u2212", "the culture must be one whose default formatting would break the SQL");

            script.Render(settings).Should().Be("-" + (-(long)settings.DoorbellKey).ToString(CultureInfo.InvariantCulture));
        }
        finally
        {
            CultureInfo.CurrentCulture = culture;
        }
    }

    [Fact]
    public void A_schema_name_that_looks_like_a_placeholder_is_rendered_literally()
    {
        var settings = new SchemaSettings("__TXKEY__", "pgevents");
        var script = new SchemaScript(1, "001_test.sql", "CREATE SCHEMA __SCHEMA__;");

        script.Render(settings).Should().Be("CREATE SCHEMA \"__TXKEY__\";");
    }
}
