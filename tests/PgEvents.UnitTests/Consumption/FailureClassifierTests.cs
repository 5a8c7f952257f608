using System.Net.Sockets;
using Npgsql;

namespace PgEvents.UnitTests.Consumption;

public sealed class FailureClassifierTests
{
    private static PostgresException Postgres(string sqlState) => new("server says no", "FATAL", "FATAL", sqlState);

    [Theory]
    [InlineData("57P01")] // admin shutdown
    [InlineData("53300")] // too many connections
    [InlineData("08006")] // connection failure
    [InlineData("08P01")] // protocol violation: how PgBouncer reports pool trouble
    [InlineData("08000")] // any connection exception
    [InlineData("26000")] // a prepared statement is gone: the server session was replaced under the connection
    public void Server_errors_that_reconnecting_cures_are_transient(string sqlState) =>
        FailureClassifier.IsTransient(Postgres(sqlState)).Should().BeTrue();

    [Theory]
    [InlineData("42501")] // insufficient privilege
    [InlineData("3D000")] // no such database
    [InlineData("42P01")] // undefined table
    [InlineData("28P01")] // failed login
    public void Server_errors_that_need_a_fix_are_not_transient(string sqlState) =>
        FailureClassifier.IsTransient(Postgres(sqlState)).Should().BeFalse();

    [Fact]
    public void Network_errors_and_timeouts_are_transient()
    {
        FailureClassifier.IsTransient(new IOException("reset by peer")).Should().BeTrue();
        FailureClassifier.IsTransient(new TimeoutException()).Should().BeTrue();
        FailureClassifier.IsTransient(new NpgsqlException("read failed", new IOException())).Should().BeTrue();
        FailureClassifier.IsTransient(new NpgsqlException("connect failed", new SocketException())).Should().BeTrue();
    }

    [Fact]
    public void An_Npgsql_error_without_a_network_cause_is_not_transient() =>
        FailureClassifier.IsTransient(new NpgsqlException("something else")).Should().BeFalse();

    [Fact]
    public void An_InvalidOperationException_is_judged_by_the_Npgsql_error_it_wraps()
    {
        FailureClassifier.IsTransient(new InvalidOperationException("x", new NpgsqlException("read failed", new IOException()))).Should().BeTrue();
        FailureClassifier.IsTransient(new InvalidOperationException("x", Postgres("08P01"))).Should().BeTrue();
        FailureClassifier.IsTransient(new InvalidOperationException("x", Postgres("42501"))).Should().BeFalse();
        FailureClassifier.IsTransient(new InvalidOperationException("x")).Should().BeFalse();
    }

    [Fact]
    public void PgEvents_refusals_and_bugs_are_not_transient()
    {
        FailureClassifier.IsTransient(new PgEventsException("not a session of its own")).Should().BeFalse();
        FailureClassifier.IsTransient(new FormatException()).Should().BeFalse();
    }

    [Fact]
    public void Database_network_and_PgEvents_failures_are_retried()
    {
        FailureClassifier.IsRetryable(Postgres("42501")).Should().BeTrue();
        FailureClassifier.IsRetryable(new NpgsqlException("x")).Should().BeTrue();
        FailureClassifier.IsRetryable(new IOException()).Should().BeTrue();
        FailureClassifier.IsRetryable(new TimeoutException()).Should().BeTrue();
        FailureClassifier.IsRetryable(new PgEventsException("refused")).Should().BeTrue();
        FailureClassifier.IsRetryable(new InvalidOperationException("x", new NpgsqlException("y"))).Should().BeTrue();
    }

    [Fact]
    public void Other_exceptions_are_bugs_and_not_retried()
    {
        FailureClassifier.IsRetryable(new InvalidOperationException("x")).Should().BeFalse();
        FailureClassifier.IsRetryable(new InvalidOperationException("x", new ArgumentException())).Should().BeFalse();
        FailureClassifier.IsRetryable(new FormatException()).Should().BeFalse();
        FailureClassifier.IsRetryable(new ArgumentOutOfRangeException("x")).Should().BeFalse();
    }

    [Fact]
    public void A_connection_that_was_never_opened_counts_as_broken()
    {
        using var connection = new NpgsqlConnection();

        FailureClassifier.IsBroken(connection).Should().BeTrue();
    }

    [Fact]
    public void Describe_gives_the_exception_type_then_its_message()
    {
        FailureClassifier.Describe(new InvalidOperationException("boom")).Should().Be("InvalidOperationException: boom");
        FailureClassifier.Describe(new PgEventsException("bad row")).Should().Be("PgEventsException: bad row");
        FailureClassifier.Describe(Postgres("42501")).Should().StartWith("PostgresException: 42501: server says no");
    }
}
