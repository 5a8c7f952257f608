using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Npgsql;

namespace PgEvents;

/// <summary>Maps tables to handlers for the consumer registered by <c>AddPgEvents</c>, and chooses its connections.</summary>
public sealed class PgEventsBuilder
{
    private readonly PgEventsRegistrations _registrations;

    internal PgEventsBuilder(IServiceCollection services, string name, PgEventsRegistrations registrations)
    {
        Services = services;
        Name = name;
        _registrations = registrations;
    }

    /// <summary>The service collection, for further registrations.</summary>
    public IServiceCollection Services { get; }

    /// <summary>The consumer's registration name: the key of its keyed services; empty for the consumer registered without a name.</summary>
    public string Name { get; }

    /// <summary>
    /// Takes every connection of this consumer from the <see cref="NpgsqlDataSource"/> registered in
    /// the container (by <c>AddNpgsqlDataSource</c>, say), with its logging, password provider,
    /// authentication, TLS and multi-host settings. See <see cref="UseDataSource(Func{IServiceProvider, NpgsqlDataSource})"/>.
    /// </summary>
    /// <returns>This builder.</returns>
    /// <exception cref="PgEventsException">When the consumer is built: no <see cref="NpgsqlDataSource"/> is registered.</exception>
    public PgEventsBuilder UseDataSource()
    {
        var name = Name;
        return UseDataSource(sp => sp.GetService<NpgsqlDataSource>() ?? throw new PgEventsException(
            $"{PgEventsRegistrations.Describe(name)} takes its connections from the NpgsqlDataSource registered in the container (UseDataSource()), and none is registered. " +
            "Register one (AddNpgsqlDataSource from the Npgsql.DependencyInjection package, or AddSingleton(dataSource)), or pass it to UseDataSource."));
    }

    /// <summary>Takes every connection of this consumer from <paramref name="dataSource"/>. See <see cref="UseDataSource(Func{IServiceProvider, NpgsqlDataSource})"/>.</summary>
    /// <param name="dataSource">The data source; the caller keeps owning it.</param>
    /// <returns>This builder.</returns>
    public PgEventsBuilder UseDataSource(NpgsqlDataSource dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        return UseDataSource(_ => dataSource);
    }

    /// <summary>
    /// Takes every connection of this consumer from the data source <paramref name="dataSource"/>
    /// returns (resolved once, when the consumer is built), instead of building one from
    /// <see cref="PgEventsOptions.ConnectionString"/>, which is then not needed;
    /// <see cref="PgEventsOptions.ConfigureDataSource"/> does not apply. The host keeps owning the
    /// data source. Pooling is fine: before its lease and LISTEN connections go back to the pool the
    /// consumer releases its advisory locks, stops listening and puts back the session settings it
    /// changed. A pool below 3 connections is refused at start.
    /// Multiplexing is refused at start, since a lease needs a session of its own. The last call wins.
    /// </summary>
    /// <param name="dataSource">Returns the data source, e.g. <c>sp =&gt; sp.GetRequiredKeyedService&lt;NpgsqlDataSource&gt;("events")</c>.</param>
    /// <returns>This builder.</returns>
    public PgEventsBuilder UseDataSource(Func<IServiceProvider, NpgsqlDataSource> dataSource)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        Services.RemoveAllKeyed<HostDataSource>(Name);
        Services.AddKeyedSingleton(Name, new HostDataSource(dataSource));
        _registrations.UseHostDataSource(Name);
        return this;
    }

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
        Services.AddSingleton(HandlerRegistration.Create<TRow, THandler>(table, Name));
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

        return AddBatchHandler<THandler>(Array.ConvertAll(tables, TableName.Parse));
    }

    /// <summary>Delivers the changes of <paramref name="tables"/> to <typeparamref name="THandler"/> in batches; see <see cref="AddBatchHandler{THandler}(string[])"/>.</summary>
    /// <typeparam name="THandler">The handler type.</typeparam>
    /// <param name="tables">The exact table names.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">No table is given.</exception>
    public PgEventsBuilder AddBatchHandler<THandler>(params TableName[] tables)
        where THandler : class, IBatchHandler
    {
        ArgumentNullException.ThrowIfNull(tables);
        if (tables.Length == 0)
        {
            throw new ArgumentException($"AddBatchHandler<{typeof(THandler).Name}> needs at least one table.", nameof(tables));
        }

        Services.TryAddScoped<THandler>();
        foreach (var table in tables)
        {
            Services.AddSingleton(HandlerRegistration.CreateBatch<THandler>(table, Name));
        }

        return this;
    }
}
