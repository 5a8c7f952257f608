using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace PgEvents.Benchmarks;

/// <summary>
/// Results as Markdown: printed to stdout as they come (so a long run shows progress and a crash
/// loses nothing already printed) and written to a file at the end. Progress chatter goes to
/// stderr so that stdout stays pasteable Markdown.
/// </summary>
internal sealed class MarkdownReport
{
    private readonly StringBuilder _text = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public void Line(string line = "")
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
        _text.AppendLine(line);
    }

    public void Heading(string heading)
    {
        Line(heading);
        Line();
    }

    public void Paragraph(string text)
    {
        Line(text);
        Line();
    }

    public void Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows)
    {
        Line("| " + string.Join(" | ", header) + " |");
        Line("|" + string.Concat(header.Select(_ => " --- |")));
        foreach (var row in rows)
        {
            Line("| " + string.Join(" | ", row) + " |");
        }

        Line();
    }

    public void Progress(string message) =>
        Console.Error.WriteLine($"[{_clock.Elapsed:mm\\:ss}] {message}");

    public async Task SaveAsync(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, _text.ToString());
    }
}

/// <summary>Invariant number formatting for the tables.</summary>
internal static class Fmt
{
    public static string N0(double value) => double.IsNaN(value) ? "–" : value.ToString("N0", CultureInfo.InvariantCulture);

    public static string N0(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string F1(double value) => double.IsNaN(value) ? "–" : value.ToString("0.0", CultureInfo.InvariantCulture);

    public static string F2(double value) => double.IsNaN(value) ? "–" : value.ToString("0.00", CultureInfo.InvariantCulture);

    public static string Ms(double value) => double.IsNaN(value) ? "–"
        : value >= 100 ? value.ToString("0", CultureInfo.InvariantCulture)
        : value.ToString("0.0", CultureInfo.InvariantCulture);

    public static string Ratio(double numerator, double denominator) =>
        double.IsNaN(numerator) || double.IsNaN(denominator) || denominator == 0 ? "–" : F2(numerator / denominator);

    public static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("0", CultureInfo.InvariantCulture) + " MiB",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("0", CultureInfo.InvariantCulture) + " KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };

    public static string Size(int bytes) => bytes switch
    {
        >= 1_000_000 => (bytes / 1_000_000).ToString(CultureInfo.InvariantCulture) + " MB",
        >= 1_000 => (bytes / 1_000).ToString(CultureInfo.InvariantCulture) + " KB",
        _ => bytes.ToString(CultureInfo.InvariantCulture) + " B",
    };

    public static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);
}
