using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using PgEvents;
using PgEvents.Testing;

// The smallest real use of the packages: a throwaway server (PgEvents.Testing, or the server in
// PGEVENTS_TEST_CONNECTION), a host with one handler (PgEvents), one inserted row. Exit code 0 when
// the handler received it, 1 otherwise.

var timeout = TimeSpan.FromSeconds(60);
using var cancellation = new CancellationTokenSource(timeout * 2);
await using var server = await PostgresServer.StartAsync(cancellationToken: cancellation.Token);
var connectionString = await server.CreateDatabaseAsync("package_smoke", cancellation.Token);
Console.WriteLine($"Server: {server.Kind}");

await using (var setup = new NpgsqlConnection(connectionString))
{
    await setup.OpenAsync(cancellation.Token);
    await using var create = new NpgsqlCommand("CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL)", setup);
    await create.ExecuteNonQueryAsync(cancellation.Token);
}

var received = new Received();
var builder = Host.CreateApplicationBuilder(args);
builder.Logging.AddFilter("Npgsql", LogLevel.Warning).AddFilter("Microsoft", LogLevel.Warning);
builder.Services.AddSingleton(received);
builder.Services
    .AddPgEvents(o =>
    {
        o.ConnectionString = connectionString;
        o.ConsumerName = "package-smoke";
    })
    .AddHandler<Item, ItemHandler>("items");

using var host = builder.Build();
await host.StartAsync(cancellation.Token);
try
{
    await using (var insert = new NpgsqlConnection(connectionString))
    {
        await insert.OpenAsync(cancellation.Token);
        await using var command = new NpgsqlCommand("INSERT INTO items VALUES (1, 'from the package')", insert);
        await command.ExecuteNonQueryAsync(cancellation.Token);
    }

    var item = await received.Item.Task.WaitAsync(timeout, cancellation.Token);
    Console.WriteLine($"OK: the handler received item {item.Id} '{item.Label}'.");
    return 0;
}
catch (TimeoutException)
{
    Console.Error.WriteLine($"FAILED: the handler received nothing within {timeout.TotalSeconds} s.");
    return 1;
}
finally
{
    await host.StopAsync(CancellationToken.None);
}

internal sealed record Item(int Id, string Label);

internal sealed class Received
{
    public TaskCompletionSource<Item> Item { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

internal sealed class ItemHandler(Received received) : IRowHandler<Item>
{
    public Task HandleAsync(RowChange<Item> change, CancellationToken cancellationToken)
    {
        if (change.Kind == ChangeKind.Insert && change.Row is { } row)
        {
            received.Item.TrySetResult(row);
        }

        return Task.CompletedTask;
    }
}
