using Npgsql;
using PgEvents.Tests.Consumption;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Hosting;

/// <summary>ConfigureDataSource shapes every connection PgEvents opens, pooled and session alike.</summary>
public sealed class DataSourceConfigurationTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task The_callback_configures_the_pooled_and_the_session_connections_and_the_consumer_runs_on_them()
    {
        await db.ExecuteAsync("CREATE TABLE ds_items (id bigint PRIMARY KEY, widget_id bigint NOT NULL, label text NOT NULL)");
        var target = new NpgsqlConnectionStringBuilder(db.ConnectionString);

        // The connection string alone points at the wrong database: only the callback makes it work.
        var wrong = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Database = "postgres" };
        var configured = 0;
        await using var host = ConsumerHost.Create(wrong.ConnectionString, b => b.AddHandler<Gadget, RecordingHandler<Gadget>>("ds_items"), o =>
        {
            o.ConsumerName = "ds";
            o.ConfigureDataSource = builder =>
            {
                Interlocked.Increment(ref configured);
                builder.ConnectionStringBuilder.Database = target.Database;
                builder.ConnectionStringBuilder.ApplicationName = "ds-configured";

                // A session connection must stay unpooled whatever the callback says.
                builder.ConnectionStringBuilder.Pooling = true;
            };
        });
        await host.StartAsync();

        await db.ExecuteAsync("INSERT INTO ds_items VALUES (1, 7, 'configured')");
        await host.Sink.WaitForCountAsync(1);
        configured.Should().Be(2, "PgEvents builds a pooled and an unpooled data source");

        var sessions = await db.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ds-configured' AND datname = current_database()");
        sessions.Should().BeGreaterThanOrEqualTo(2, "the working connection and the LISTEN connection both come from the callback");

        await host.StopAsync();
        await Eventually.UntilAsync(
            async () => await db.ScalarAsync<long>(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'ds-configured' AND l.locktype = 'advisory'") == 0,
            "the lease goes with its session when the consumer stops: the session connection was not pooled");
    }
}
