namespace PgEvents.Benchmarks;

/// <summary>A row of the <c>bench</c> table as handlers receive it.</summary>
internal sealed record BenchRow(long Id, string Payload, long Started, DateTimeOffset UpdatedAt);
