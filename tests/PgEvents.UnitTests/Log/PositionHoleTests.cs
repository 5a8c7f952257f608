namespace PgEvents.UnitTests.Log;

public sealed class PositionHoleTests
{
    private static readonly PositionHole Hole = new(10, 14, [1001u, 1002u]);

    [Theory]
    [InlineData(10, 14)]
    [InlineData(10, 10)]
    [InlineData(14, 14)]
    [InlineData(11, 13)]
    public void A_hole_covers_every_gap_inside_it_including_its_ends(long from, long to) =>
        Hole.Covers(from, to).Should().BeTrue();

    [Theory]
    [InlineData(9, 14)]
    [InlineData(10, 15)]
    [InlineData(9, 15)]
    [InlineData(15, 16)]
    [InlineData(5, 9)]
    public void A_hole_does_not_cover_a_gap_that_reaches_outside_it(long from, long to) =>
        Hole.Covers(from, to).Should().BeFalse();

    [Fact]
    public void A_hole_with_holders_is_not_abandoned()
    {
        Hole.IsAbandoned.Should().BeFalse();
        new PositionHole(3, 3, [7u]).IsAbandoned.Should().BeFalse();
    }

    [Fact]
    public void A_hole_is_abandoned_once_its_last_holder_has_ended()
    {
        var stillRunning = Hole with { Holders = [1002u] };
        var ended = stillRunning with { Holders = [] };

        stillRunning.IsAbandoned.Should().BeFalse();
        ended.IsAbandoned.Should().BeTrue();
        ended.Covers(10, 14).Should().BeTrue("dropping holders keeps the range");
    }
}
