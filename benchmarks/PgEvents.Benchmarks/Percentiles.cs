namespace PgEvents.Benchmarks;

internal static class Percentiles
{
    /// <summary>Nearest-rank percentile of unsorted samples (sorts a copy).</summary>
    public static double Of(IReadOnlyCollection<double> samples, double percentile)
    {
        if (samples.Count == 0)
        {
            return double.NaN;
        }

        var sorted = samples.Order().ToArray();
        var rank = (int)Math.Ceiling(percentile / 100 * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    /// <summary>The middle sample, or the mean of the two middle ones for an even count.</summary>
    public static double Median(IReadOnlyCollection<double> samples)
    {
        var sorted = samples.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
