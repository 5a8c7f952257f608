namespace PgEvents.UnitTests.Consumption;

public sealed class BackoffTests
{
    private static readonly TimeSpan Ms100 = TimeSpan.FromMilliseconds(100);

    private static TimeSpan[] Take(Backoff backoff, int count) => Enumerable.Range(0, count).Select(_ => backoff.Next()).ToArray();

    [Fact]
    public void Delays_start_at_the_initial_delay_and_grow_by_the_multiplier()
    {
        var backoff = new Backoff(Ms100, 3, TimeSpan.FromHours(1));

        Take(backoff, 4).Should().Equal(
            TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(900), TimeSpan.FromMilliseconds(2700));
    }

    [Fact]
    public void Delays_stop_growing_at_the_cap_and_stay_there()
    {
        var backoff = new Backoff(TimeSpan.FromSeconds(1), 2, TimeSpan.FromSeconds(5));

        Take(backoff, 6).Should().Equal(
            TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4),
            TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_multiplier_of_one_keeps_every_delay_at_the_initial_delay()
    {
        var backoff = new Backoff(Ms100, 1, TimeSpan.FromSeconds(5));

        Take(backoff, 5).Should().AllBeEquivalentTo(Ms100);
    }

    [Fact]
    public void A_cap_below_the_initial_delay_is_raised_to_the_initial_delay()
    {
        var backoff = new Backoff(TimeSpan.FromSeconds(2), 2, TimeSpan.FromSeconds(1));

        Take(backoff, 3).Should().AllBeEquivalentTo(TimeSpan.FromSeconds(2));
    }

    [Fact]
    public void Reset_starts_the_schedule_over_at_the_initial_delay()
    {
        var backoff = new Backoff(Ms100, 2, TimeSpan.FromSeconds(30));
        Take(backoff, 5);

        backoff.Reset();

        Take(backoff, 2).Should().Equal(TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(200));
    }

    [Fact]
    public void Attempts_counts_the_delays_taken_since_the_last_reset()
    {
        var backoff = new Backoff(Ms100, 2, TimeSpan.FromSeconds(30));
        backoff.Attempts.Should().Be(0);

        Take(backoff, 3);
        backoff.Attempts.Should().Be(3);

        backoff.Reset();
        backoff.Attempts.Should().Be(0);

        backoff.Next();
        backoff.Attempts.Should().Be(1);
    }

    [Fact]
    public void Attempts_keep_counting_after_the_delay_reached_the_cap()
    {
        var backoff = new Backoff(TimeSpan.FromSeconds(1), 10, TimeSpan.FromSeconds(2));

        Take(backoff, 50);

        backoff.Attempts.Should().Be(50);
    }

    [Theory]
    [InlineData(0.0, 1000)]
    [InlineData(0.5, 900)]
    [InlineData(0.999999, 800)]
    [InlineData(1.0, 800)]
    public void Jitter_takes_at_most_its_fraction_off_a_delay_and_never_adds(double random, int expectedMs)
    {
        var backoff = new Backoff(TimeSpan.FromSeconds(1), 2, TimeSpan.FromSeconds(30), jitter: 0.2, random: () => random);

        var delay = backoff.Next();

        delay.Should().BeCloseTo(TimeSpan.FromMilliseconds(expectedMs), TimeSpan.FromMilliseconds(0.01));
        delay.Should().BeGreaterThanOrEqualTo(TimeSpan.FromMilliseconds(800)).And.BeLessThanOrEqualTo(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void Jitter_shortens_each_delay_but_does_not_slow_the_growth_of_the_schedule()
    {
        var backoff = new Backoff(TimeSpan.FromSeconds(1), 2, TimeSpan.FromSeconds(30), jitter: 0.5, random: () => 1);

        Take(backoff, 4).Should().Equal(
            TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(4));
    }

    [Fact]
    public void Jittered_delays_from_the_shared_random_stay_between_the_cap_less_its_fraction_and_the_cap()
    {
        var max = TimeSpan.FromSeconds(30);
        var backoff = new Backoff(TimeSpan.FromSeconds(1), 2, max, jitter: 0.2);
        Take(backoff, 10);

        var capped = Take(backoff, 1000);

        capped.Should().OnlyContain(d => d <= max && d >= max * 0.8);
        capped.Distinct().Should().HaveCountGreaterThan(1, "the jitter must spread instances that failed together");
    }

    [Theory]
    [InlineData(double.MaxValue)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(1e300)]
    public void A_huge_multiplier_goes_to_the_cap_instead_of_overflowing(double multiplier)
    {
        var backoff = new Backoff(TimeSpan.FromSeconds(1), multiplier, TimeSpan.FromMinutes(5));

        Take(backoff, 4).Should().Equal(
            TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5));
    }

    [Fact]
    public void Growth_towards_the_largest_cap_never_turns_negative()
    {
        var backoff = new Backoff(TimeSpan.FromDays(1), 7.5, TimeSpan.MaxValue);

        var delays = Take(backoff, 100);

        delays.Should().OnlyContain(d => d >= TimeSpan.FromDays(1));
        delays.Should().BeInAscendingOrder();
        delays[^1].Should().Be(TimeSpan.MaxValue);
    }

    [Fact]
    public void Invalid_settings_are_refused_naming_the_parameter()
    {
        var cases = new (Action Create, string Parameter)[]
        {
            (() => _ = new Backoff(TimeSpan.FromSeconds(-1), 2, TimeSpan.FromSeconds(1)), "initial"),
            (() => _ = new Backoff(Ms100, 0.5, TimeSpan.FromSeconds(1)), "multiplier"),
            (() => _ = new Backoff(Ms100, double.NaN, TimeSpan.FromSeconds(1)), "multiplier"),
            (() => _ = new Backoff(Ms100, 2, TimeSpan.FromSeconds(1), jitter: -0.1), "jitter"),
            (() => _ = new Backoff(Ms100, 2, TimeSpan.FromSeconds(1), jitter: 1.1), "jitter"),
        };

        foreach (var (create, parameter) in cases)
        {
            create.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be(parameter);
        }
    }
}
