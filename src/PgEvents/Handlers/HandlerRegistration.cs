using Microsoft.Extensions.DependencyInjection;

namespace PgEvents;

/// <summary>One <c>AddHandler&lt;TRow, THandler&gt;(table)</c> call, with a typed invoker.</summary>
internal sealed class HandlerRegistration
{
    private HandlerRegistration(TableName table, Type rowType, Type handlerType, HandlerInvoker invoke)
    {
        Table = table;
        RowType = rowType;
        HandlerType = handlerType;
        Invoke = invoke;
    }

    internal delegate Task HandlerInvoker(
        IServiceProvider services, CapturedEvent captured, RowDeserializer deserializer, EventTransactionScope transaction, CancellationToken cancellationToken);

    public TableName Table { get; }

    public Type RowType { get; }

    public Type HandlerType { get; }

    public HandlerInvoker Invoke { get; }

    public static HandlerRegistration Create<TRow, THandler>(TableName table)
        where THandler : class, IRowHandler<TRow> =>
        new(table, typeof(TRow), typeof(THandler), static (services, captured, deserializer, transaction, cancellationToken) =>
        {
            var row = deserializer.Deserialize<TRow>(captured, captured.RowJson, "row");
            var oldRow = deserializer.Deserialize<TRow>(captured, captured.OldRowJson, "old row");
            var handler = services.GetRequiredService<THandler>();
            return handler.HandleAsync(new RowChange<TRow>(captured, row, oldRow, transaction), cancellationToken);
        });

    public bool IsSameAs(HandlerRegistration other) =>
        Table == other.Table && RowType == other.RowType && HandlerType == other.HandlerType;

    public override string ToString() => $"{HandlerType.Name} ({RowType.Name}) for {Table}";
}
