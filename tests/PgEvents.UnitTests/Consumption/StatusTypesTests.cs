using System.Reflection;

namespace PgEvents.UnitTests.Consumption;

/// <summary>
/// The types PgEvents reports state in are read-only classes: users cannot construct, copy with
/// <c>with</c> or deconstruct them, so later versions can add properties without breaking callers.
/// </summary>
public sealed class StatusTypesTests
{
    private static readonly DateTimeOffset Since = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TableName Orders = new("public", "orders");

    public static TheoryData<Type> ReportedTypes => new()
    {
        typeof(ConsumerStatus),
        typeof(BlockedEvent),
        typeof(ConsumerFault),
        typeof(DeadLetter),
        typeof(SnapshotProgress),
        typeof(ConsumerCursor),
    };

    [Theory]
    [MemberData(nameof(ReportedTypes))]
    public void A_reported_type_has_no_public_constructor_setter_or_Deconstruct(Type type)
    {
        type.IsSealed.Should().BeTrue();
        type.GetConstructors().Should().BeEmpty("only PgEvents creates them");
        type.GetMethod("Deconstruct").Should().BeNull();
        type.GetMethod("<Clone>$", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance).Should().BeNull("a record's copy would allow 'with'");
        type.GetProperties().Should().OnlyContain(p => p.SetMethod == null, "the properties are read-only, without init");
    }

    [Fact]
    public void A_blocked_event_reads_as_its_table_position_attempts_and_error() =>
        new BlockedEvent(42, 1, Orders, 3, "InvalidOperationException: boom", Since).ToString()
            .Should().Be("\"public\".\"orders\" at 42/1 after 3 attempts: InvalidOperationException: boom");

    [Fact]
    public void A_dead_letter_reads_as_its_id_change_and_error() =>
        new DeadLetter(7, "orders-sync", 42, 1, Orders, ChangeKind.Insert, "{}", 5, "InvalidOperationException: boom", Since).ToString()
            .Should().Be("dead letter 7: Insert \"public\".\"orders\" at 42/1 after 5 attempts: InvalidOperationException: boom");

    [Fact]
    public void A_status_reads_as_role_cursor_and_lag_with_what_stops_it()
    {
        static ConsumerStatus Status(bool isActive = true, BlockedEvent? blocked = null, ConsumerFault? fault = null) =>
            new("orders-sync", isActive, isStandby: false, 100, 90, 1, 10, TimeSpan.FromSeconds(3), blocked, fault, []);

        Status().ToString().Should().Be("orders-sync: active, cursor 90/1, head 100, lag 10 events (00:00:03)");
        Status(blocked: new BlockedEvent(91, 2, Orders, 3, "boom", Since)).ToString()
            .Should().EndWith(", blocked on \"public\".\"orders\" at 91/2 after 3 attempts: boom");
        Status(isActive: false, fault: new ConsumerFault("42501", "permission denied", Since, 2)).ToString()
            .Should().Be("orders-sync: stopped, cursor 90/1, head 100, lag 10 events (00:00:03), cannot run: 42501: permission denied");
    }
}
