using System.Text.RegularExpressions;

namespace PgEvents.UnitTests.Schema;

public sealed partial class SchemaSettingsTests
{
    [GeneratedRegex("^pgevents_[0-9a-f]{16}$")]
    private static partial Regex HashedPrefix();

    [GeneratedRegex("^pgevents\\.tx_[0-9a-f]{16}$")]
    private static partial Regex TransactionKeyPattern();

    [Fact]
    public void The_schema_is_quoted_and_qualifies_object_names()
    {
        var settings = new SchemaSettings("Event Log", "events");

        settings.SchemaName.Should().Be("Event Log");
        settings.Schema.Should().Be("\"Event Log\"");
        settings.Qualify("transactions").Should().Be("\"Event Log\".\"transactions\"");
    }

    [Fact]
    public void The_default_schema_keeps_the_plain_trigger_prefix_and_others_get_their_own()
    {
        new SchemaSettings("pgevents", "pgevents").TriggerPrefix.Should().Be("pgevents");

        var a = new SchemaSettings("tenant_a", "pgevents").TriggerPrefix;
        var b = new SchemaSettings("tenant_b", "pgevents").TriggerPrefix;

        a.Should().MatchRegex(HashedPrefix());
        b.Should().MatchRegex(HashedPrefix());
        a.Should().NotBe(b, "two installations may track the same table");
    }

    [Theory]
    [InlineData("pgevents")]
    [InlineData("Event Log \"v2\"")]
    [InlineData("ünïcödé")]
    public void The_transaction_key_is_a_plain_dotted_setting_name_whatever_the_schema(string schema) =>
        new SchemaSettings(schema, "pgevents").TransactionKey.Should().MatchRegex(TransactionKeyPattern());

    [Fact]
    public void Derived_keys_are_stable_and_differ_between_schemas()
    {
        var first = new SchemaSettings("tenant_a", "pgevents");
        var again = new SchemaSettings("tenant_a", "other_channel");
        var other = new SchemaSettings("tenant_b", "pgevents");

        (again.TransactionKey, again.InstallLockKey, again.CommitLockClass, again.DoorbellKey)
            .Should().Be((first.TransactionKey, first.InstallLockKey, first.CommitLockClass, first.DoorbellKey));
        other.TransactionKey.Should().NotBe(first.TransactionKey);
        other.InstallLockKey.Should().NotBe(first.InstallLockKey);
        other.CommitLockClass.Should().NotBe(first.CommitLockClass);
        other.DoorbellKey.Should().NotBe(first.DoorbellKey);
    }

    [Fact]
    public void The_commit_lock_class_is_never_negative_so_SQL_can_shift_it_as_a_bigint()
    {
        var classes = Enumerable.Range(0, 500).Select(i => new SchemaSettings("schema_" + i, "pgevents").CommitLockClass).ToList();

        classes.Should().OnlyContain(c => c >= 0);
        SchemaSettings.DeriveKey("commit", "schema_0").Should().Be(SchemaSettings.DeriveKey("commit", "schema_0"));
        classes.Distinct().Should().HaveCountGreaterThan(490);
    }

    [Fact]
    public void Keys_of_different_purposes_differ_for_one_schema()
    {
        var settings = new SchemaSettings("pgevents", "pgevents");

        new[] { settings.InstallLockKey, settings.DoorbellKey, SchemaSettings.DeriveKey("commit", "pgevents") }
            .Should().OnlyHaveUniqueItems();
    }

    [Theory]
    [InlineData("it's", "schemaName")]
    [InlineData("$x", "schemaName")]
    [InlineData("", "schemaName")]
    public void Bad_schema_names_are_refused(string schema, string parameter)
    {
        var create = () => new SchemaSettings(schema, "pgevents");

        create.Should().Throw<ArgumentException>().Which.ParamName.Should().Be(parameter);
    }

    [Fact]
    public void A_bad_notification_channel_is_refused()
    {
        var create = () => new SchemaSettings("pgevents", new string('c', 64));

        create.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("notificationChannel");
    }

    [Fact]
    public void From_takes_every_schema_option()
    {
        var settings = SchemaSettings.From(new PgEventsSchemaOptions { SchemaName = "log", NotificationChannel = "ring", CaptureReplicaWrites = false });

        (settings.SchemaName, settings.NotificationChannel, settings.CaptureReplicaWrites).Should().Be(("log", "ring", false));
    }
}
