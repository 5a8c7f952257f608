namespace PgEvents.Benchmarks;

/// <summary>Latency summary of one measurement, in milliseconds.</summary>
internal sealed record LatencySummary(int Count, double P50, double P99, double P999, double Max)
{
    public static LatencySummary Empty { get; } = new(0, double.NaN, double.NaN, double.NaN, double.NaN);
}

internal static class Percentiles
{
    /// <summary>
    /// Nearest-rank percentiles. With fewer than 1,000 samples p99.9 is the maximum, and with fewer
    /// than 100 so is p99; the sample count is reported next to them for that reason.
    /// </summary>
    public static LatencySummary Summarize(double[] samples)
    {
        if (samples.Length == 0)
        {
            return LatencySummary.Empty;
        }

        var sorted = samples.ToArray();
        Array.Sort(sorted);
        return new LatencySummary(sorted.Length, Rank(sorted, 50), Rank(sorted, 99), Rank(sorted, 99.9), sorted[^1]);
    }

    public static double Rank(double[] sorted, double percentile)
    {
        var rank = (int)Math.Ceiling(percentile / 100 * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    public static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
