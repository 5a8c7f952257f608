using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Consumption;

public sealed record LetterItem(long Id, string Label) : ITestRow;

public sealed class DeadLetterTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static IEnumerable<long> Ids(EventSink sink) => sink.Deliveries.Select(d => ((LetterItem)d.Row!).Id);

    /// <summary>A consumer named after its table, dead-lettering after 3 attempts, failing on <paramref name="failingId"/>.</summary>
    private async Task<(ConsumerHost Host, FailureSwitch Poison)> StartAsync(string name, long failingId, bool createTable = true, string? schemaName = null)
    {
        if (createTable)
        {
            await db.ExecuteAsync($"CREATE TABLE {name} (id bigint PRIMARY KEY, label text NOT NULL)");
        }

        // The attempt number in the message shows which attempt's error was kept.
        var poison = new FailureSwitch { FailingId = failingId, Message = (id, attempt) => $"poison item {id} (attempt {attempt})" };
        var host = ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<LetterItem, SwitchedHandler<LetterItem>>(name),
            o =>
            {
                o.ConsumerName = name;
                o.FailurePolicy = FailurePolicy.DeadLetter;
                o.Retry.MaxAttempts = 3;
                if (schemaName is not null)
                {
                    o.SchemaName = schemaName;
                }
            },
            services: s => s.AddSingleton(poison));
        await host.StartAsync();
        return (host, poison);
    }

    private async Task InsertAsync(string table, IEnumerable<int> ids)
    {
        foreach (var id in ids)
        {
            await db.ExecuteAsync($"INSERT INTO {table} VALUES ({id}, 'item {id}')");
        }
    }

    /// <summary>Where the insert of row <paramref name="id"/> sits in the log, read straight from the tables.</summary>
    private async Task<(long Position, long EventId)> LogPositionOfAsync(string schema, string table, long id)
    {
        var position = await db.ScalarAsync<long>(
            $"SELECT t.position FROM {schema}.events e JOIN {schema}.transactions t ON t.xid = e.xid WHERE e.table_name = @table AND (e.row_data->>'id')::bigint = @id",
            ("table", table), ("id", id));
        var eventId = await db.ScalarAsync<long>(
            $"SELECT e.event_id FROM {schema}.events e WHERE e.table_name = @table AND (e.row_data->>'id')::bigint = @id",
            ("table", table), ("id", id));
        return (position, eventId);
    }

    [Fact]
    public async Task An_event_that_keeps_failing_is_dead_lettered_after_exactly_MaxAttempts_and_the_later_events_are_delivered()
    {
        var (host, poison) = await StartAsync("dl_continue", failingId: 3);
        await using var _ = host;

        await InsertAsync("dl_continue", Enumerable.Range(1, 5));
        await host.Sink.WaitForCountAsync(4, TimeSpan.FromSeconds(10));

        Ids(host.Sink).Should().Equal(1, 2, 4, 5);
        poison.Attempts.Should().Be(3, "Retry.MaxAttempts = 3");
        (await host.Consumer.GetStatusAsync()).Blocked.Should().BeNull("a dead-lettered event no longer blocks");

        var letter = (await host.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Subject;
        var (position, eventId) = await LogPositionOfAsync("log_dl_continue", "dl_continue", 3);
        letter.ConsumerName.Should().Be("dl_continue");
        letter.Attempts.Should().Be(3);
        letter.Error.Should().Be("InvalidOperationException: poison item 3 (attempt 3)", "the error of the last attempt is kept");
        letter.Table.Should().Be(new TableName("public", "dl_continue"));
        letter.Kind.Should().Be(ChangeKind.Insert);
        letter.Position.Should().Be(position);
        letter.EventId.Should().Be(eventId);
        letter.Position.Should().BeGreaterThan(host.Sink.Deliveries[1].Position).And.BeLessThan(host.Sink.Deliveries[2].Position);
        letter.DeadLetteredAt.Should().BeCloseTo(DateTimeOffset.UtcNow, TimeSpan.FromMinutes(1));
        using (var row = JsonDocument.Parse(letter.RowJson!))
        {
            row.RootElement.GetProperty("id").GetInt64().Should().Be(3);
            row.RootElement.GetProperty("label").GetString().Should().Be("item 3");
        }

        // A later event is delivered, and the dead-lettered one is not tried again meanwhile.
        await InsertAsync("dl_continue", [6]);
        await host.Sink.WaitForCountAsync(5, TimeSpan.FromSeconds(10));
        Ids(host.Sink).Should().Equal(1, 2, 4, 5, 6);
        poison.Attempts.Should().Be(3);
        (await host.Consumer.GetDeadLettersAsync()).Should().ContainSingle();
    }

    [Fact]
    public async Task The_cursor_moves_past_a_dead_lettered_event_so_a_restarted_consumer_does_not_deliver_it_again()
    {
        var (first, poison) = await StartAsync("dl_restart", failingId: 2);
        await using (first)
        {
            await InsertAsync("dl_restart", [1, 2, 3]);
            await first.Sink.WaitForCountAsync(2, TimeSpan.FromSeconds(10));
            Ids(first.Sink).Should().Equal(1, 3);
        }

        poison.Attempts.Should().Be(3);

        // The handler no longer fails, but the event is in the dead-letter table, not ahead of the cursor.
        var (second, fixedPoison) = await StartAsync("dl_restart", failingId: 2, createTable: false);
        await using var __ = second;
        fixedPoison.Failing = false;
        await InsertAsync("dl_restart", [4]);
        await second.Sink.WaitForCountAsync(1, TimeSpan.FromSeconds(10));

        Ids(second.Sink).Should().Equal(4);
        fixedPoison.Attempts.Should().Be(0);
        (await second.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Which.EventId.Should().Be(
            (await LogPositionOfAsync("log_dl_restart", "dl_restart", 2)).EventId);
    }

    [Fact]
    public async Task Replaying_a_dead_letter_after_the_handler_is_fixed_runs_the_handlers_for_it_and_removes_it()
    {
        var (host, poison) = await StartAsync("dl_replay_fixed", failingId: 2);
        await using var _ = host;
        await InsertAsync("dl_replay_fixed", [1, 2, 3]);
        await host.Sink.WaitForCountAsync(2, TimeSpan.FromSeconds(10));
        var letter = (await host.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Subject;

        poison.Failing = false;
        await host.Consumer.ReplayDeadLetterAsync(letter.Id);

        Ids(host.Sink).Should().Equal(1, 3, 2);
        var replayed = host.Sink.Deliveries[2];
        replayed.Kind.Should().Be(ChangeKind.Insert);
        replayed.Table.Should().Be("dl_replay_fixed");
        replayed.Position.Should().Be(letter.Position);
        replayed.EventId.Should().Be(letter.EventId);
        ((LetterItem)replayed.Row!).Label.Should().Be("item 2");
        poison.Attempts.Should().Be(4, "three attempts before dead-lettering, one replay");
        (await host.Consumer.GetDeadLettersAsync()).Should().BeEmpty();
        (await db.ScalarAsync<long>("SELECT count(*) FROM log_dl_replay_fixed.dead_letters")).Should().Be(0);

        // The replay is a one-off: the consumer does not deliver the event again.
        await InsertAsync("dl_replay_fixed", [4]);
        await host.Sink.WaitForCountAsync(4, TimeSpan.FromSeconds(10));
        Ids(host.Sink).Should().Equal(1, 3, 2, 4);
    }

    [Fact]
    public async Task Replaying_a_dead_letter_while_the_handler_still_fails_keeps_it_with_one_more_attempt_and_the_new_error()
    {
        var (host, poison) = await StartAsync("dl_replay_failing", failingId: 1);
        await using var _ = host;
        await InsertAsync("dl_replay_failing", [1, 2]);
        await host.Sink.WaitForCountAsync(1, TimeSpan.FromSeconds(10));
        var letter = (await host.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Subject;
        letter.Attempts.Should().Be(3);

        var replay = () => host.Consumer.ReplayDeadLetterAsync(letter.Id);

        await replay.Should().ThrowAsync<InvalidOperationException>().WithMessage("poison item 1 (attempt 4)");
        var kept = (await host.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Subject;
        kept.Id.Should().Be(letter.Id);
        kept.EventId.Should().Be(letter.EventId);
        kept.Attempts.Should().Be(4);
        kept.Error.Should().Be("InvalidOperationException: poison item 1 (attempt 4)");

        await replay.Should().ThrowAsync<InvalidOperationException>().WithMessage("poison item 1 (attempt 5)");
        (await host.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Which.Attempts.Should().Be(5);
        Ids(host.Sink).Should().Equal(2);
    }

    [Fact]
    public async Task Replaying_an_unknown_dead_letter_id_throws_PgEventsException()
    {
        var (host, _) = await StartAsync("dl_unknown", failingId: -1);
        await using var __ = host;

        var replay = () => host.Consumer.ReplayDeadLetterAsync(987_654);

        await replay.Should().ThrowAsync<PgEventsException>().WithMessage("*dl_unknown*987654*");
    }

    [Fact]
    public async Task Dead_letters_belong_to_the_consumer_that_gave_up_and_another_consumer_of_the_same_log_neither_lists_nor_replays_them()
    {
        var (giver, _) = await StartAsync("dl_owner", failingId: 1, schemaName: "log_dl_shared");
        await using var __ = giver;
        await InsertAsync("dl_owner", [1, 2]);
        await giver.Sink.WaitForCountAsync(1, TimeSpan.FromSeconds(10));
        var letter = (await giver.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Subject;

        await using var other = ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<LetterItem, RecordingHandler<LetterItem>>("dl_owner"),
            o => { o.ConsumerName = "dl_other"; o.SchemaName = "log_dl_shared"; o.FailurePolicy = FailurePolicy.DeadLetter; });

        (await other.Consumer.GetDeadLettersAsync()).Should().BeEmpty();
        var replay = () => other.Consumer.ReplayDeadLetterAsync(letter.Id);
        await replay.Should().ThrowAsync<PgEventsException>();
        other.Sink.Deliveries.Should().BeEmpty();
        (await giver.Consumer.GetDeadLettersAsync()).Should().ContainSingle().Which.Id.Should().Be(letter.Id);
    }
}
