namespace PgEvents.Benchmarks;

/// <summary>A row of the <c>bench</c> tables as handlers receive it (snake_case columns, PascalCase properties).</summary>
internal sealed record BenchRow(long Id, string Payload, long Started, DateTimeOffset UpdatedAt);
