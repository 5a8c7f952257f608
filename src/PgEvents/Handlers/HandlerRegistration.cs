using Microsoft.Extensions.DependencyInjection;

namespace PgEvents;

/// <summary>One handler mapped to one table: a row handler (typed, one change per call) or a batch handler.</summary>
internal sealed class HandlerRegistration
{
    private HandlerRegistration(string consumer, TableName table, Type? rowType, Type handlerType, RowInvoker? invokeRow, BatchInvoker? invokeBatch)
    {
        Consumer = consumer;
        Table = table;
        RowType = rowType;
        HandlerType = handlerType;
        InvokeRow = invokeRow;
        InvokeBatch = invokeBatch;
    }

    internal delegate Task RowInvoker(
        IServiceProvider services, CapturedEvent captured, RowDeserializer deserializer, EventTransactionScope transaction, CancellationToken cancellationToken);

    internal delegate Task BatchInvoker(IServiceProvider services, ChangeBatch batch, CancellationToken cancellationToken);

    /// <summary>The registration name of the consumer this handler belongs to (see <c>AddPgEvents(name)</c>).</summary>
    public string Consumer { get; }

    public TableName Table { get; }

    /// <summary>The row type of a row handler; null for a batch handler, which deserializes on demand.</summary>
    public Type? RowType { get; }

    public Type HandlerType { get; }

    /// <summary>Set for an <see cref="IRowHandler{TRow}"/>.</summary>
    public RowInvoker? InvokeRow { get; }

    /// <summary>Set for an <see cref="IBatchHandler"/>.</summary>
    public BatchInvoker? InvokeBatch { get; }

    public bool IsBatch => InvokeBatch is not null;

    public static HandlerRegistration Create<TRow, THandler>(TableName table, string consumer = "")
        where THandler : class, IRowHandler<TRow> =>
        new(consumer, table, typeof(TRow), typeof(THandler), static (services, captured, deserializer, transaction, cancellationToken) =>
        {
            var row = deserializer.Deserialize<TRow>(captured, captured.RowJson, "row");
            var oldRow = deserializer.Deserialize<TRow>(captured, captured.OldRowJson, "old row");
            var handler = services.GetRequiredService<THandler>();
            return handler.HandleAsync(new RowChange<TRow>(captured, row, oldRow, transaction), cancellationToken);
        }, invokeBatch: null);

    public static HandlerRegistration CreateBatch<THandler>(TableName table, string consumer = "")
        where THandler : class, IBatchHandler =>
        new(consumer, table, rowType: null, typeof(THandler), invokeRow: null, static (services, batch, cancellationToken) =>
            services.GetRequiredService<THandler>().HandleAsync(batch, cancellationToken));

    public bool IsSameAs(HandlerRegistration other) =>
        Table == other.Table && RowType == other.RowType && HandlerType == other.HandlerType && IsBatch == other.IsBatch;

    public override string ToString() =>
        RowType is null ? $"{HandlerType.Name} (batches) for {Table}" : $"{HandlerType.Name} ({RowType.Name}) for {Table}";
}
