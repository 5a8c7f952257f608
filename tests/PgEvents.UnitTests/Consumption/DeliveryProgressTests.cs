using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace PgEvents.UnitTests.Consumption;

public sealed class DeliveryProgressTests
{
    private readonly ConsumerState _state = new("orders-sync", new FakeTimeProvider(), NullLogger.Instance);
    private readonly DeliveryProgress _progress;

    public DeliveryProgressTests() =>
        _progress = new DeliveryProgress(new CursorStore(new SchemaSettings("pgevents", "pgevents"), "orders-sync"), _state);

    [Fact]
    public void Nothing_is_delivered_or_unsaved_at_first()
    {
        _progress.Delivered.Should().Be(LogPosition.Start);
        _progress.HasUnsaved.Should().BeFalse();
    }

    [Fact]
    public void Advancing_without_saving_leaves_the_position_unsaved()
    {
        _progress.Advance(new LogPosition(5, 2));

        _progress.Delivered.Should().Be(new LogPosition(5, 2));
        _progress.HasUnsaved.Should().BeTrue();
    }

    [Fact]
    public void Advancing_with_a_saved_cursor_leaves_nothing_unsaved()
    {
        _progress.Advance(new LogPosition(5, 2));

        _progress.AdvanceSaved(new LogPosition(6, 1));

        _progress.Delivered.Should().Be(new LogPosition(6, 1));
        _progress.HasUnsaved.Should().BeFalse();
    }

    [Fact]
    public async Task Saving_with_nothing_unsaved_neither_touches_the_connection_nor_confirms_running()
    {
        _progress.AdvanceSaved(new LogPosition(6, 1));
        using var neverOpened = new NpgsqlConnection();

        await _progress.SaveAsync(neverOpened, CancellationToken.None);

        _state.RanOnThisConnection.Should().BeFalse();
    }
}
