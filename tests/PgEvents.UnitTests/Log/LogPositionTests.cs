namespace PgEvents.UnitTests.Log;

public sealed class LogPositionTests
{
    [Fact]
    public void Positions_order_by_commit_position_first_and_event_id_second()
    {
        var positions = new[] { new LogPosition(2, 1), new LogPosition(1, 9), new LogPosition(2, 0), new LogPosition(1, 10), LogPosition.Start };

        positions.Order().Should().Equal(
            LogPosition.Start, new LogPosition(1, 9), new LogPosition(1, 10), new LogPosition(2, 0), new LogPosition(2, 1));
    }

    [Fact]
    public void A_later_transaction_comes_after_every_event_of_an_earlier_one_whatever_the_event_ids()
    {
        var laterTransaction = new LogPosition(6, 1);
        var earlierWithHugeEventId = new LogPosition(5, long.MaxValue);

        (laterTransaction > earlierWithHugeEventId).Should().BeTrue();
        (laterTransaction >= earlierWithHugeEventId).Should().BeTrue();
        (earlierWithHugeEventId < laterTransaction).Should().BeTrue();
        (earlierWithHugeEventId <= laterTransaction).Should().BeTrue();
        laterTransaction.CompareTo(earlierWithHugeEventId).Should().BePositive();
    }

    [Fact]
    public void Equal_positions_compare_equal_and_are_not_strictly_before_or_after_each_other()
    {
        var a = new LogPosition(7, 3);
        var b = new LogPosition(7, 3);

        a.Should().Be(b);
        a.CompareTo(b).Should().Be(0);
        (a < b).Should().BeFalse();
        (a > b).Should().BeFalse();
        (a <= b).Should().BeTrue();
        (a >= b).Should().BeTrue();
    }

    [Fact]
    public void Start_is_before_the_first_event_ever_captured()
    {
        LogPosition.Start.Should().Be(new LogPosition(0, 0));
        (LogPosition.Start < new LogPosition(0, 1)).Should().BeTrue();
        (LogPosition.Start < new LogPosition(1, 1)).Should().BeTrue();
    }

    [Theory]
    [InlineData(0, 0, "0/0")]
    [InlineData(12, 3, "12/3")]
    [InlineData(9_000_000_000, 42, "9000000000/42")]
    public void ToString_shows_position_slash_event_id(long position, long eventId, string expected) =>
        new LogPosition(position, eventId).ToString().Should().Be(expected);
}
