using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

/// <summary>
/// While a consumer keeps delivering, its cursor row is written on an interval, not after every read
/// (under load that was a write and a round trip per read of a few events); once it runs out of work
/// it saves everything before it sleeps.
/// </summary>
public sealed class CursorSaveIntervalTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    [Fact]
    public async Task A_busy_consumer_saves_its_cursor_when_the_interval_has_passed_and_in_full_once_it_runs_out_of_work()
    {
        await db.ExecuteAsync("CREATE TABLE interval_items (id bigint PRIMARY KEY, label text NOT NULL)");
        const string Consumer = "cursor_interval";
        void Configure(PgEventsOptions o)
        {
            o.ConsumerName = Consumer;
            o.BatchSize = 5;
        }

        // Installs the log and registers the cursor; the backlog is then written while nobody consumes.
        await using (var installer = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<Item, RecordingHandler<Item>>("interval_items"), Configure).StartAsync())
        {
            await installer.StopAsync();
        }

        await db.ExecuteAsync("DO $$ BEGIN FOR i IN 1..60 LOOP INSERT INTO interval_items VALUES (i, 'x'); COMMIT; END LOOP; END $$");

        var clock = new ManualClock();
        var probe = new SavedCursorProbe(db.ConnectionString, $"SELECT position FROM log_{Consumer}.consumers WHERE name = '{Consumer}'", clock, AdvanceAtId: 30);
        await using var consumer = await ConsumerHost.Create(
            db.ConnectionString,
            b => b.AddHandler<Item, CursorProbingHandler>("interval_items"),
            Configure,
            services: s => s.AddSingleton<TimeProvider>(clock).AddSingleton(probe)).StartAsync();
        await consumer.Sink.WaitForCountAsync(60);

        var seen = consumer.Sink.Deliveries.Select(d => ((Item)d.Row!).Id).ToList();
        seen.Should().Equal(Enumerable.Range(1, 60).Select(i => (long)i));
        var positionOf = consumer.Sink.Deliveries.ToDictionary(d => ((Item)d.Row!).Id, d => d.Position);
        probe.Saved.Where(s => s.Id <= 30).Select(s => s.SavedPosition).Should().AllBeEquivalentTo(0L,
            "six reads of five events went by with the clock standing still: none of them reached the save interval");
        probe.Saved.Where(s => s.Id > 35).Select(s => s.SavedPosition).Should().OnlyContain(p => p >= positionOf[30],
            "the first read after the clock moved on by the interval saved what had been delivered");

        await Eventually.UntilAsync(
            async () => await db.ScalarAsync<long>($"SELECT position FROM log_{Consumer}.consumers WHERE name = '{Consumer}'") == positionOf[60],
            "a consumer that ran out of work saves its whole progress before it sleeps");
    }

    /// <summary>A clock that moves only when told to; timers still run on real time.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _timestamp = Stopwatch.GetTimestamp();

        public override long GetTimestamp() => Interlocked.Read(ref _timestamp);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _timestamp, (long)(by.TotalSeconds * TimestampFrequency));
    }

    /// <summary>Reads the saved cursor as each event is handled, and moves the clock at one of them.</summary>
    private sealed record SavedCursorProbe(string ConnectionString, string Sql, ManualClock Clock, long AdvanceAtId)
    {
        public List<(long Id, long SavedPosition)> Saved { get; } = [];
    }

    private sealed class CursorProbingHandler(EventSink sink, SavedCursorProbe probe) : IRowHandler<Item>
    {
        public async Task HandleAsync(RowChange<Item> change, CancellationToken cancellationToken)
        {
            await using var connection = new NpgsqlConnection(probe.ConnectionString);
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand(probe.Sql, connection);
            var saved = (long)(await command.ExecuteScalarAsync(cancellationToken))!;
            lock (probe.Saved)
            {
                probe.Saved.Add((change.Row!.Id, saved));
            }

            if (change.Row.Id == probe.AdvanceAtId)
            {
                probe.Clock.Advance(TimeSpan.FromMilliseconds(100));
            }

            sink.Record("probe", change);
        }
    }
}
