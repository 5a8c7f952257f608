using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace PgEvents.UnitTests.Log;

/// <summary>The parts of the reader and of the commit-phase check that decide without a server.</summary>
public sealed class ChangeLogReaderTests
{
    private static readonly SchemaSettings Settings = new("pgevents", "pgevents");

    [Theory]
    [InlineData("INSERT", ChangeKind.Insert)]
    [InlineData("UPDATE", ChangeKind.Update)]
    [InlineData("DELETE", ChangeKind.Delete)]
    [InlineData("TRUNCATE", ChangeKind.Truncate)]
    public void ParseKind_maps_each_logged_operation(string operation, ChangeKind kind) =>
        ChangeLogReader.ParseKind(operation).Should().Be(kind);

    [Theory]
    [InlineData("insert")]
    [InlineData("MERGE")]
    [InlineData("")]
    [InlineData("INSERT ")]
    public void ParseKind_refuses_an_unknown_operation_naming_it(string operation)
    {
        var parse = () => ChangeLogReader.ParseKind(operation);

        parse.Should().Throw<PgEventsException>().WithMessage($"*unknown operation '{operation}'*");
    }

    [Fact]
    public void A_new_reader_waits_on_no_hole()
    {
        var reader = new ChangeLogReader(Settings, "test");

        reader.PendingHole.Should().BeNull();
    }

    [Fact]
    public async Task Waiting_for_the_pending_hole_returns_at_once_when_there_is_none()
    {
        var reader = new ChangeLogReader(Settings, "test");
        using var neverOpened = new NpgsqlConnection();

        var wait = reader.WaitForPendingHoleAsync(neverOpened, TimeSpan.FromHours(1), CancellationToken.None);

        wait.IsCompletedSuccessfully.Should().BeTrue();
        await wait;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task A_read_limit_below_one_is_refused_before_the_connection_is_used(int limit)
    {
        var reader = new ChangeLogReader(Settings, "test");
        using var neverOpened = new NpgsqlConnection();

        var read = () => reader.ReadAsync(neverOpened, LogPosition.Start, new ReadLimits(limit, 1024), CancellationToken.None);

        (await read.Should().ThrowAsync<ArgumentOutOfRangeException>()).Which.ParamName.Should().Be("limits.Count");
    }

    [Fact]
    public async Task Waiting_for_no_holders_returns_at_once_without_the_connection()
    {
        var phase = new CommitPhase(Settings, new FakeTimeProvider());
        using var neverOpened = new NpgsqlConnection();

        var wait = phase.WaitAsync(neverOpened, [], TimeSpan.FromHours(1), CancellationToken.None);

        wait.IsCompletedSuccessfully.Should().BeTrue();
        await wait;
    }

    [Fact]
    public async Task Waiting_with_no_time_left_returns_without_asking_the_server()
    {
        var phase = new CommitPhase(Settings, new FakeTimeProvider());
        using var neverOpened = new NpgsqlConnection();

        // A closed connection would throw if the wait used it: with no time left, it must not.
        await phase.WaitAsync(neverOpened, [1u, 2u], TimeSpan.Zero, CancellationToken.None);
    }

    [Fact]
    public void A_captured_event_knows_its_log_position_and_exact_table_name()
    {
        var captured = new CapturedEvent(12, 3, 4711, "Sales", "Order Items", ChangeKind.Update, "{}", "{}", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);

        captured.LogPosition.Should().Be(new LogPosition(12, 3));
        captured.TableName.Should().Be(new TableName("Sales", "Order Items"));
    }
}
