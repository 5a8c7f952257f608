using Microsoft.Extensions.DependencyInjection;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Batching;

/// <summary>Wrong batch handler registrations fail clearly: at registration, or when the consumer starts.</summary>
public sealed class BatchValidationTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static ConsumerHost Create(DatabaseFixture db, string name, Action<PgEventsBuilder> map) =>
        ConsumerHost.Create(db.ConnectionString, map, o => o.ConsumerName = name, services: s => s.AddSingleton<BatchLog>());

    [Fact]
    public void AddBatchHandler_without_a_table_fails_at_registration_naming_the_handler()
    {
        var register = () => Create(db, "bv_none", b => b.AddBatchHandler<RecordingBatchHandler>(Array.Empty<string>()));

        register.Should().Throw<ArgumentException>().WithMessage("*AddBatchHandler<RecordingBatchHandler> needs at least one table*");
    }

    [Theory]
    [InlineData("")]
    [InlineData("a.b.c")]
    [InlineData("public.")]
    [InlineData(".orders")]
    public void AddBatchHandler_with_a_malformed_table_name_fails_at_registration(string table)
    {
        var register = () => Create(db, "bv_malformed", b => b.AddBatchHandler<RecordingBatchHandler>("bv_fine", table));

        register.Should().Throw<ArgumentException>();
    }

    [Fact]
    public void AddBatchHandler_with_a_null_table_fails_at_registration()
    {
        var register = () => Create(db, "bv_null", b => b.AddBatchHandler<RecordingBatchHandler>("bv_fine", null!));

        register.Should().Throw<ArgumentException>();
    }

    [Fact]
    public async Task A_batch_handler_for_a_table_that_does_not_exist_fails_the_start_naming_the_table_and_installs_nothing()
    {
        await db.ExecuteAsync("CREATE TABLE bv_exists (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = Create(db, "bv_missing", b => b.AddBatchHandler<RecordingBatchHandler>("bv_exists", "bv_ghost"));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        var run = () => host.Consumer.RunAsync(deadline.Token);

        var message = (await run.Should().ThrowAsync<PgEventsException>()).Which.Message;
        message.Should().Contain("\"public\".\"bv_ghost\"").And.Contain("does not exist").And.NotContain("\"public\".\"bv_exists\"");
        (await db.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'log_bv_missing')")).Should().BeFalse();
    }

    [Fact]
    public async Task A_batch_handler_for_a_table_without_a_primary_key_fails_the_start_like_a_row_handler()
    {
        await db.ExecuteAsync("CREATE TABLE bv_keyless (id bigint, label text NOT NULL)");
        await using var host = Create(db, "bv_keyless", b => b.AddBatchHandler<RecordingBatchHandler>("bv_keyless"));
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        var run = () => host.Consumer.RunAsync(deadline.Token);

        (await run.Should().ThrowAsync<PgEventsException>()).Which.Message.Should().Contain("\"public\".\"bv_keyless\"").And.Contain("no primary key");
    }

    [Fact]
    public async Task Registering_a_batch_handler_twice_for_a_table_delivers_each_change_to_it_once()
    {
        await db.ExecuteAsync("CREATE TABLE bv_twice (id bigint PRIMARY KEY, label text NOT NULL)");
        await using var host = await Create(db, "bv_twice", b => b
            .AddBatchHandler<RecordingBatchHandler>("bv_twice", "public.bv_twice")
            .AddBatchHandler<RecordingBatchHandler>("bv_twice")).StartAsync();
        var log = host.Services.GetRequiredService<BatchLog>();

        await db.ExecuteAsync("INSERT INTO bv_twice VALUES (1, 'one'), (2, 'two')");
        await log.WaitForChangesAsync("batch", 2);
        await db.ExecuteAsync("INSERT INTO bv_twice VALUES (3, 'three')");
        await log.WaitForIdAsync("batch", 3);

        log.ChangesOf("batch").Select(BatchLog.IdOf).Should().Equal(1, 2, 3);
    }
}
