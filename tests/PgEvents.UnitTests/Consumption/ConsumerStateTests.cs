using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace PgEvents.UnitTests.Consumption;

public sealed class ConsumerStateTests
{
    private static readonly DateTimeOffset Start = new(2025, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _time = new(Start);
    private readonly FakeLogger _logger = new();
    private readonly ConsumerState _state;

    public ConsumerStateTests() => _state = new ConsumerState("orders-sync", _time, _logger);

    private static PostgresException Postgres(string sqlState, string message = "permission denied for table transactions") =>
        new(message, "ERROR", "ERROR", sqlState);

    [Fact]
    public void The_first_fault_counts_one_attempt_since_now()
    {
        var fault = _state.RecordFault(Postgres("42501"));

        fault.Should().BeEquivalentTo(new { SqlState = "42501", Message = "permission denied for table transactions", Since = Start, Attempts = 1 });
        _state.Fault.Should().BeSameAs(fault);
    }

    [Fact]
    public void Faults_in_a_row_count_attempts_and_keep_the_time_of_the_first()
    {
        _state.RecordFault(Postgres("42501"));
        _time.Advance(TimeSpan.FromSeconds(30));
        _state.RecordFault(Postgres("42501"));
        _time.Advance(TimeSpan.FromSeconds(30));

        var third = _state.RecordFault(new PgEventsException("not a session of its own"));

        third.Attempts.Should().Be(3);
        third.Since.Should().Be(Start);
        third.SqlState.Should().BeNull("the latest error is the one shown");
        third.Message.Should().Be("not a session of its own");
    }

    [Fact]
    public void ConfirmRunning_clears_the_fault_and_logs_it_once()
    {
        _state.RecordFault(Postgres("42501"));

        _state.ConfirmRunning();
        _state.ConfirmRunning();

        _state.Fault.Should().BeNull();
        var record = _logger.Collector.GetSnapshot().Should().ContainSingle().Subject;
        record.Message.Should().Contain("orders-sync").And.Contain("runs again");
    }

    [Fact]
    public void A_fault_after_running_again_starts_a_new_count_at_its_own_time()
    {
        _state.RecordFault(Postgres("42501"));
        _state.RecordFault(Postgres("42501"));
        _state.ConfirmRunning();
        _time.Advance(TimeSpan.FromMinutes(10));

        var fault = _state.RecordFault(Postgres("3D000", "database \"gone\" does not exist"));

        fault.Should().BeEquivalentTo(new { SqlState = "3D000", Message = "database \"gone\" does not exist", Since = Start.AddMinutes(10), Attempts = 1 });
    }

    [Fact]
    public void ConfirmRunning_without_a_fault_logs_nothing()
    {
        _state.ConfirmRunning();

        _logger.Collector.Count.Should().Be(0);
    }

    [Fact]
    public void A_server_error_wrapped_by_Npgsql_in_an_InvalidOperationException_keeps_its_SQLSTATE()
    {
        var fault = _state.RecordFault(new InvalidOperationException("wrapped", Postgres("42P01", "relation \"x\" does not exist")));

        fault.SqlState.Should().Be("42P01");
        fault.Message.Should().Be("relation \"x\" does not exist");
    }

    [Fact]
    public void Ran_on_this_connection_is_set_by_ConfirmRunning_and_cleared_by_a_new_connection()
    {
        _state.RanOnThisConnection.Should().BeFalse();

        _state.ConfirmRunning();
        _state.RanOnThisConnection.Should().BeTrue();

        _state.StartConnection();
        _state.RanOnThisConnection.Should().BeFalse();
    }

    [Fact]
    public void Roles_move_between_standby_active_and_stopped()
    {
        _state.BecomeStandby();
        (_state.IsActive, _state.IsStandby).Should().Be((false, true));

        _state.BecomeActive();
        (_state.IsActive, _state.IsStandby).Should().Be((true, false));

        _state.Stop();
        (_state.IsActive, _state.IsStandby).Should().Be((false, false));
    }

    [Fact]
    public void Block_shows_the_blocked_event_until_Unblock()
    {
        var blocked = new BlockedEvent(12, 3, new TableName("public", "orders"), 2, "InvalidOperationException: boom", Start);

        _state.Block(blocked);
        _state.Blocked.Should().BeSameAs(blocked);

        _state.Unblock();
        _state.Blocked.Should().BeNull();
    }

    [Theory]
    [InlineData("42501", "permission denied", "42501: permission denied")]
    [InlineData(null, "not a session of its own", "not a session of its own")]
    public void A_fault_reads_as_its_code_and_message(string? sqlState, string message, string expected) =>
        new ConsumerFault(sqlState, message, Start, 1).ToString().Should().Be(expected);
}
