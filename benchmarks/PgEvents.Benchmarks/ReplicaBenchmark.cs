using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NpgsqlTypes;
using PgEvents.Testing;

namespace PgEvents.Benchmarks;

/// <summary>
/// Changes applied per second into a real replica (a second database of the same server) by a
/// consumer that starts in front of a backlog: one upsert per change with a row handler, against one
/// multi-row upsert per delivered batch with a batch handler. And lanes: a handler that waits 10 ms
/// per change (a slow external call), on one lane against eight.
/// </summary>
internal static class ReplicaBenchmark
{
    public static async Task RunAsync(PostgresServer server, Report report, bool quick)
    {
        report.Line("## 6. Applying changes to a replica");
        report.Line();
        var rows = new List<string[]>();
        var perChange = await MeasureAsync<ReplicaRowHandler>(server, quick ? 10_000 : 50_000, batched: false);
        rows.Add(["row handler, one upsert per change", perChange.Events.ToString("N0", CultureInfo.InvariantCulture), perChange.Seconds.ToString("0.0", CultureInfo.InvariantCulture), perChange.PerSecond.ToString("N0", CultureInfo.InvariantCulture)]);
        var batch = await MeasureAsync<ReplicaBatchHandler>(server, quick ? 100_000 : 1_000_000, batched: true);
        rows.Add(["batch handler, one upsert per batch", batch.Events.ToString("N0", CultureInfo.InvariantCulture), batch.Seconds.ToString("0.0", CultureInfo.InvariantCulture), batch.PerSecond.ToString("N0", CultureInfo.InvariantCulture)]);
        report.Table(["handler", "changes", "seconds", "changes/s"], rows);
        report.Line($"Batch ÷ row handler: {batch.PerSecond / perChange.PerSecond:0.0}×.");
        report.Line();

        report.Line("### Lanes with a handler that waits 10 ms per change");
        report.Line();
        var laneRows = new List<string[]>();
        var events = quick ? 400 : 2_000;
        double? single = null;
        foreach (var lanes in new[] { 1, 8 })
        {
            var (_, seconds, perSecond) = await MeasureLanesAsync(server, lanes == 1 ? events / 4 : events, lanes);
            single ??= perSecond;
            laneRows.Add([lanes.ToString(CultureInfo.InvariantCulture), seconds.ToString("0.0", CultureInfo.InvariantCulture), perSecond.ToString("N0", CultureInfo.InvariantCulture), (perSecond / single.Value).ToString("0.0", CultureInfo.InvariantCulture) + "×"]);
        }

        report.Table(["lanes", "seconds", "changes/s", "vs one lane"], laneRows);
    }

    private static async Task<(int Events, double Seconds, double PerSecond)> MeasureAsync<THandler>(PostgresServer server, int events, bool batched)
        where THandler : class
    {
        var source = await server.CreateDatabaseAsync("replica_source");
        var replica = await server.CreateDatabaseAsync("replica_target");
        await Designs.CreateAsync(source, Design.PgEvents, CatchUpBenchmark.Table(0));
        await using (var target = NpgsqlDataSource.Create(replica))
        {
            await Designs.ExecuteAsync(target, "CREATE TABLE bench (id bigint PRIMARY KEY, payload text NOT NULL, started bigint NOT NULL)");
        }

        await CatchUpBenchmark.WriteBacklogAsync(source, events, tables: 1, payloadBytes: 100);
        var services = new ServiceCollection();
        services.AddSingleton(_ => new ReplicaTarget(replica));
        var builder = services.AddPgEvents(o => { o.ConnectionString = source; o.ConsumerName = "replica"; o.Retention.Age = null; });
        if (batched)
        {
            builder.AddBatchHandler<ReplicaBatchHandler>(CatchUpBenchmark.Table(0));
        }
        else
        {
            builder.AddHandler<BenchRow, ReplicaRowHandler>(CatchUpBenchmark.Table(0));
        }

        var (seconds, _) = await ConsumerDrain.RunAsync(services, events);
        await server.DropDatabaseAsync(source);
        await server.DropDatabaseAsync(replica);
        return (events, seconds, events / seconds);
    }

    private static async Task<(int Events, double Seconds, double PerSecond)> MeasureLanesAsync(PostgresServer server, int events, int lanes)
    {
        var source = await server.CreateDatabaseAsync("lanes");
        await Designs.CreateAsync(source, Design.PgEvents, CatchUpBenchmark.Table(0));
        await CatchUpBenchmark.WriteBacklogAsync(source, events, tables: 1, payloadBytes: 100);
        var services = new ServiceCollection();
        services.AddPgEvents(o => { o.ConnectionString = source; o.ConsumerName = "lanes"; o.Retention.Age = null; o.DeliveryLanes = lanes; })
            .AddHandler<BenchRow, SlowHandler>(CatchUpBenchmark.Table(0));
        var (seconds, _) = await ConsumerDrain.RunAsync(services, events);
        await server.DropDatabaseAsync(source);
        return (events, seconds, events / seconds);
    }
}

/// <summary>The replica's connections.</summary>
internal sealed class ReplicaTarget(string connectionString) : IAsyncDisposable
{
    public NpgsqlDataSource DataSource { get; } = NpgsqlDataSource.Create(connectionString);

    public ValueTask DisposeAsync() => DataSource.DisposeAsync();
}

/// <summary>One autocommit upsert per change: a WAL flush on the replica each.</summary>
internal sealed class ReplicaRowHandler(ReplicaTarget replica) : IRowHandler<BenchRow>
{
    public async Task HandleAsync(RowChange<BenchRow> change, CancellationToken cancellationToken)
    {
        var row = change.Row!;
        await using var upsert = replica.DataSource.CreateCommand(
            "INSERT INTO bench (id, payload, started) VALUES (@id, @payload, @started) ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload, started = EXCLUDED.started");
        upsert.Parameters.AddWithValue("id", row.Id);
        upsert.Parameters.AddWithValue("payload", row.Payload);
        upsert.Parameters.AddWithValue("started", row.Started);
        await upsert.ExecuteNonQueryAsync(cancellationToken);
        CountingHandler.Add(1);
    }
}

/// <summary>
/// One transaction and one statement per batch: the batch's rows travel as arrays and are upserted
/// with <c>unnest</c>, the last change of each key winning (one statement cannot touch a row twice;
/// the backlog holds inserts only, so there are no deletes to apply).
/// </summary>
internal sealed class ReplicaBatchHandler(ReplicaTarget replica) : IBatchHandler
{
    public async Task HandleAsync(ChangeBatch batch, CancellationToken cancellationToken)
    {
        var latest = new Dictionary<long, BenchRow>();
        foreach (var change in batch)
        {
            if (change.GetRow<BenchRow>() is { } row)
            {
                latest[row.Id] = row;
            }
        }

        await using var upsert = replica.DataSource.CreateCommand(
            """
            INSERT INTO bench (id, payload, started)
            SELECT * FROM unnest(@ids, @payloads, @starts)
            ON CONFLICT (id) DO UPDATE SET payload = EXCLUDED.payload, started = EXCLUDED.started
            """);
        upsert.Parameters.Add(new NpgsqlParameter<long[]>("ids", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = [.. latest.Keys] });
        upsert.Parameters.Add(new NpgsqlParameter<string[]>("payloads", NpgsqlDbType.Array | NpgsqlDbType.Text) { TypedValue = [.. latest.Values.Select(r => r.Payload)] });
        upsert.Parameters.Add(new NpgsqlParameter<long[]>("starts", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = [.. latest.Values.Select(r => r.Started)] });
        await upsert.ExecuteNonQueryAsync(cancellationToken);
        CountingHandler.Add(batch.Count);
    }
}

/// <summary>Waits 10 ms per change, as a call to a slow external system would.</summary>
internal sealed class SlowHandler : IRowHandler<BenchRow>
{
    public async Task HandleAsync(RowChange<BenchRow> change, CancellationToken cancellationToken)
    {
        await Task.Delay(TimeSpan.FromMilliseconds(10), cancellationToken);
        CountingHandler.Add(1);
    }
}
