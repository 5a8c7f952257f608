namespace PgEvents.UnitTests.Handlers;

public enum OrderState
{
    Open,
    Shipped,
}

public sealed record Order(long Id, string CustomerName, int Quantity, OrderState State, DateTimeOffset CreatedAt);

public sealed record Customer(long Id, string Name);

/// <summary>Records what it was given, in a list shared through DI.</summary>
public sealed class Recorder
{
    public List<(string Handler, object? Row, object? OldRow, ChangeKind Kind)> Calls { get; } = [];
}

public sealed class OrderHandler(Recorder recorder) : IRowHandler<Order>
{
    public Task HandleAsync(RowChange<Order> change, CancellationToken cancellationToken)
    {
        recorder.Calls.Add((nameof(OrderHandler), change.Row, change.OldRow, change.Kind));
        return Task.CompletedTask;
    }
}

public sealed class AuditHandler(Recorder recorder) : IRowHandler<Order>, IRowHandler<Customer>
{
    public Task HandleAsync(RowChange<Order> change, CancellationToken cancellationToken)
    {
        recorder.Calls.Add((nameof(AuditHandler), change.Row, change.OldRow, change.Kind));
        return Task.CompletedTask;
    }

    public Task HandleAsync(RowChange<Customer> change, CancellationToken cancellationToken)
    {
        recorder.Calls.Add((nameof(AuditHandler), change.Row, change.OldRow, change.Kind));
        return Task.CompletedTask;
    }
}
