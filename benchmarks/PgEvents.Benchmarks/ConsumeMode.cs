using Microsoft.Extensions.DependencyInjection;

namespace PgEvents.Benchmarks;

/// <summary>A row of the table the pgbench scripts write.</summary>
internal sealed record PgbenchRow(long Id, string Payload);

/// <summary>Receives every change and does nothing with it: what remains is PgEvents' own cost.</summary>
internal sealed class NoOpPgbenchHandler : IRowHandler<PgbenchRow>
{
    public Task HandleAsync(RowChange<PgbenchRow> change, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// <c>--consume "connection string" table[,table...]</c>: runs one consumer, as in production, until the
/// process is stopped (SIGTERM or Ctrl+C). The pgbench scripts start it beside their writers; the
/// schema is installed and the table tracked by the script.
/// </summary>
internal static class ConsumeMode
{
    public static async Task RunAsync(string connectionString, string tables)
    {
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();

        var services = new ServiceCollection();
        var builder = services.AddPgEvents(o =>
        {
            o.ConnectionString = connectionString;
            o.ConsumerName = "pgbench";
            o.InstallOnStart = false;
        });
        foreach (var table in tables.Split(','))
        {
            builder.AddHandler<PgbenchRow, NoOpPgbenchHandler>(table);
        }

        await using var provider = services.BuildServiceProvider();
        var consumer = provider.GetRequiredService<IEventConsumer>();
        Console.WriteLine($"consuming {tables}");
        await consumer.RunAsync(stop.Token);
        var status = await consumer.GetStatusAsync(CancellationToken.None);
        Console.WriteLine($"stopped at position {status.CursorPosition}, head {status.HeadPosition}");
    }
}
