using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

public sealed record RaceItem(int Id, string Label) : ITestRow
{
    long ITestRow.Id => Id;
}

/// <summary>Writers notify only while a consumer sleeps, and the hand-over never loses a wake-up.</summary>
public sealed class WakeUpTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private const long GateLock = 4343;

    [Fact]
    public async Task A_commit_that_checked_the_doorbell_while_the_consumer_was_busy_is_delivered_at_once_when_it_goes_to_sleep()
    {
        await db.ExecuteAsync(
            $$"""
            CREATE TABLE race_items (id int PRIMARY KEY, label text NOT NULL);
            CREATE TABLE race_gate (id serial PRIMARY KEY);
            CREATE FUNCTION race_gate_wait() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock({{GateLock}}); RETURN NULL; END $$;
            CREATE CONSTRAINT TRIGGER race_gate_wait AFTER INSERT ON race_gate
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION race_gate_wait();
            """);
        // Holding event 1 keeps the consumer busy (the doorbell released) at a chosen moment.
        var gate = new HandlerGate { HoldId = 1 };
        await using var host = await ConsumerHost.Create(db.ConnectionString,
            b => b.AddHandler<RaceItem, GatedHandler<RaceItem>>("race_items"),
            o =>
            {
                o.ConsumerName = "race";

                // Only a wake-up can deliver within the test; a poll never comes.
                o.PollInterval = TimeSpan.FromMinutes(5);
            },
            services: s => s.AddSingleton(gate)).StartAsync();

        // 1. The consumer is busy with event 1: it holds no doorbell.
        await db.ExecuteAsync("INSERT INTO race_items VALUES (1, 'keeps the consumer busy')");
        await gate.Entered.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // 2. A writer takes its position, finds nobody asleep (so sends no NOTIFY), and is held in
        //    its commit phase by a deferred trigger queued after the position trigger.
        await using var gateKeeper = await db.DataSource.OpenConnectionAsync();
        await Execute(gateKeeper, $"BEGIN; SELECT pg_advisory_xact_lock({GateLock})");
        await using var writer = await db.DataSource.OpenConnectionAsync();
        await Execute(writer, "BEGIN; INSERT INTO race_items VALUES (2, 'committed silently'); INSERT INTO race_gate DEFAULT VALUES");
        var commit = Execute(writer, "COMMIT");
        try
        {
            await Interleaving.WaitingOnLockAsync(db, writer.ProcessID);

            // 3. The consumer finishes event 1, finds nothing visible, takes the doorbell and must
            //    wait for the writer before it sleeps.
            gate.Release.SetResult();
            await Interleaving.WaitingOnLockAsync(db, "PgEvents:race");
        }
        finally
        {
            // 4. The writer commits; it never notifies.
            await Execute(gateKeeper, "COMMIT");
            await commit;
        }

        await host.Sink.WaitForCountAsync(2, TimeSpan.FromSeconds(10));
        host.Sink.Deliveries.Select(d => ((RaceItem)d.Row!).Id).Should().Equal(1, 2);
    }

    private static async Task Execute(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
