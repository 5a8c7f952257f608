using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace PgEvents;

/// <summary>Maps tables to handlers for the consumer registered by <c>AddPgEvents</c>.</summary>
public sealed class PgEventsBuilder
{
    internal PgEventsBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection, for further registrations.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Delivers the changes of <paramref name="table"/> to <typeparamref name="THandler"/>, with rows
    /// deserialized into <typeparamref name="TRow"/>. A table may have several handlers (called in
    /// registration order) and a handler may serve several tables. Registering the same triple twice
    /// has no effect. The handler is registered as scoped unless already registered.
    /// </summary>
    /// <typeparam name="TRow">The row type.</typeparam>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="table"><c>schema.table</c>, or <c>table</c> for <c>public.table</c>; names are exact and case-sensitive.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">The table name is malformed.</exception>
    public PgEventsBuilder AddHandler<TRow, THandler>(string table)
        where THandler : class, IRowHandler<TRow> =>
        AddHandler<TRow, THandler>(TableName.Parse(table));

    /// <summary>Delivers the changes of <paramref name="table"/> to <typeparamref name="THandler"/>.</summary>
    /// <typeparam name="TRow">The row type.</typeparam>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="table">The exact table name.</param>
    /// <returns>This builder.</returns>
    public PgEventsBuilder AddHandler<TRow, THandler>(TableName table)
        where THandler : class, IRowHandler<TRow>
    {
        Services.TryAddScoped<THandler>();
        Services.AddSingleton(HandlerRegistration.Create<TRow, THandler>(table));
        return this;
    }

    /// <summary>
    /// Delivers the changes of <paramref name="tables"/> to <typeparamref name="THandler"/> in batches:
    /// one call per delivered batch with every change of these tables in it, in delivery order. With a
    /// batch handler registered the consumer delivers in batches (see <see cref="PgEventsOptions.BatchSize"/>,
    /// <see cref="PgEventsOptions.MaxBatchBytes"/> and <see cref="PgEventsOptions.BatchBoundary"/>): row
    /// handlers of the same consumer still get one call per change, and a failure anywhere retries the
    /// whole batch. The handler is registered as scoped unless already registered.
    /// </summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="tables"><c>schema.table</c>, or <c>table</c> for <c>public.table</c>; names are exact and case-sensitive.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">No table is given, or a table name is malformed.</exception>
    public PgEventsBuilder AddBatchHandler<THandler>(params string[] tables)
        where THandler : class, IBatchHandler
    {
        ArgumentNullException.ThrowIfNull(tables);
        if (tables.Length == 0)
        {
            throw new ArgumentException($"AddBatchHandler<{typeof(THandler).Name}> needs at least one table.", nameof(tables));
        }

        var names = Array.ConvertAll(tables, TableName.Parse);
        Services.TryAddScoped<THandler>();
        foreach (var table in names)
        {
            Services.AddSingleton(HandlerRegistration.CreateBatch<THandler>(table));
        }

        return this;
    }
}
