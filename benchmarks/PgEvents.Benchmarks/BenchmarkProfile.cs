namespace PgEvents.Benchmarks;

/// <summary>Durations and sizes of one run: the full run, or the smoke test (<c>--quick</c>).</summary>
internal sealed class BenchmarkProfile
{
    public required bool Quick { get; init; }

    // 1. Write overhead
    public required TimeSpan WriteWarmUp { get; init; }

    public required TimeSpan WriteDuration { get; init; }

    /// <summary>Each cell is measured this many times, designs in a different order each round.</summary>
    public required int WriteRounds { get; init; }

    /// <summary>Zero skips the synchronous_commit=off table.</summary>
    public required TimeSpan AsyncCommitDuration { get; init; }

    public required int BulkRows { get; init; }

    public required int BulkRepetitions { get; init; }

    // 2. Latency
    public required int IdleRate { get; init; }

    public required TimeSpan IdleDuration { get; init; }

    public required int[] Rates { get; init; }

    public required int LatencyWriters { get; init; }

    public required TimeSpan LatencyWarmUp { get; init; }

    public required TimeSpan LatencyDuration { get; init; }

    // 3. Consumer throughput
    public required int CatchUpEvents { get; init; }

    public required int CatchUpSingleRowEvents { get; init; }

    // 4. Scale
    public required (int Bytes, int Events, int LatencyRate)[] RowSizes { get; init; }

    public required TimeSpan ScaleWriteDuration { get; init; }

    public required TimeSpan ScaleLatencyDuration { get; init; }

    public required long[] LogSizes { get; init; }

    /// <summary>Filling the log stops at the next stage it can reach within this budget.</summary>
    public required TimeSpan LogFillBudget { get; init; }

    public required int LogCatchUpEvents { get; init; }

    public static BenchmarkProfile Full { get; } = new()
    {
        Quick = false,
        WriteWarmUp = TimeSpan.FromSeconds(1),
        WriteDuration = TimeSpan.FromSeconds(5),
        WriteRounds = 2,
        AsyncCommitDuration = TimeSpan.FromSeconds(4),
        BulkRows = 100_000,
        BulkRepetitions = 3,
        IdleRate = 20,
        IdleDuration = TimeSpan.FromSeconds(30),
        Rates = [200, 1000, 5000],
        LatencyWriters = 8,
        LatencyWarmUp = TimeSpan.FromSeconds(2),
        LatencyDuration = TimeSpan.FromSeconds(8),
        CatchUpEvents = 1_000_000,
        CatchUpSingleRowEvents = 200_000,
        RowSizes = [(100, 200_000, 100), (10_000, 20_000, 100), (1_000_000, 200, 10)],
        ScaleWriteDuration = TimeSpan.FromSeconds(3),
        ScaleLatencyDuration = TimeSpan.FromSeconds(10),
        LogSizes = [0, 1_000_000, 10_000_000],
        LogFillBudget = TimeSpan.FromMinutes(8),
        LogCatchUpEvents = 100_000,
    };

    public static BenchmarkProfile QuickProfile { get; } = new()
    {
        Quick = true,
        WriteWarmUp = TimeSpan.FromSeconds(0.5),
        WriteDuration = TimeSpan.FromSeconds(1),
        WriteRounds = 1,
        AsyncCommitDuration = TimeSpan.Zero,
        BulkRows = 100_000,
        BulkRepetitions = 1,
        IdleRate = 20,
        IdleDuration = TimeSpan.FromSeconds(4),
        Rates = [200, 1000],
        LatencyWriters = 8,
        LatencyWarmUp = TimeSpan.FromSeconds(1),
        LatencyDuration = TimeSpan.FromSeconds(2),
        CatchUpEvents = 50_000,
        CatchUpSingleRowEvents = 5_000,
        RowSizes = [(100, 10_000, 100), (10_000, 2_000, 100), (1_000_000, 20, 10)],
        ScaleWriteDuration = TimeSpan.FromSeconds(1),
        ScaleLatencyDuration = TimeSpan.FromSeconds(2),
        LogSizes = [0, 200_000],
        LogFillBudget = TimeSpan.FromMinutes(1),
        LogCatchUpEvents = 20_000,
    };
}
