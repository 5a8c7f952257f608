namespace PgEvents.Benchmarks;

/// <summary>Row payloads for the benchmarks.</summary>
internal static class Payloads
{
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

    /// <summary>
    /// Random letters and digits: PostgreSQL's TOAST compression cannot shrink them, so a 1 MB row
    /// really writes about a megabyte (a run of one character would be stored in a few bytes).
    /// </summary>
    public static string Incompressible(int length, int seed) =>
        string.Create(length, new Random(seed), static (span, random) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = Alphabet[random.Next(Alphabet.Length)];
            }
        });
}
