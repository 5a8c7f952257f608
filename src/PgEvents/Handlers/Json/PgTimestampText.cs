using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace PgEvents;

/// <summary>
/// Reads PostgreSQL's ISO text of <c>date</c>, <c>timestamp</c>, <c>timestamptz</c> and <c>timetz</c>:
/// <c>to_jsonb</c> writes it whatever the writer's DateStyle (<c>2024-01-02T03:04:05.123456+05:30</c>),
/// range bounds write it with a space and a short offset (<c>2024-01-02 03:04:05+00</c>) when the
/// DateStyle is ISO; ISO 8601 with <c>Z</c> (JSON written by .NET) reads too. Offsets carry the writer's time zone and may have seconds (<c>+00:19:32</c> for
/// historical local mean time), which is why the parsing is ours and not DateTimeOffset's.
/// </summary>
internal static partial class PgTimestampText
{
    internal enum Infinity
    {
        None,
        Positive,
        Negative,
    }

    internal readonly record struct Value(Infinity Infinity, DateTime Local, bool HasTime, TimeSpan? Offset)
    {
        /// <summary>The instant in UTC: the local time minus the writer's offset.</summary>
        public DateTime Utc => DateTime.SpecifyKind(Local - Offset!.Value, DateTimeKind.Utc);
    }

    [GeneratedRegex(
        @"^(?<y>\d{4,})-(?<mo>\d{2})-(?<d>\d{2})(?:[T ](?<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?)(?<off>Z|[+-]\d{2}(?::\d{2}){0,2})?)?(?<bc> BC)?$",
        RegexOptions.CultureInvariant)]
    private static partial Regex Timestamp();

    [GeneratedRegex(@"^(?<time>\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(?<off>[+-]\d{2}(?::\d{2}){0,2})$", RegexOptions.CultureInvariant)]
    private static partial Regex TimeWithZone();

    public static Value Parse(string text)
    {
        switch (text)
        {
            case "infinity":
                return new Value(Infinity.Positive, default, false, null);
            case "-infinity":
                return new Value(Infinity.Negative, default, false, null);
        }

        var match = Timestamp().Match(text);
        if (!match.Success)
        {
            throw new JsonException(
                $"'{text}' is not PostgreSQL's ISO date or timestamp text. Inside ranges, dates and timestamps follow the writing session's " +
                "DateStyle: only DateStyle ISO (the default) reads unambiguously, so keep it ISO or map the column to string.");
        }

        if (match.Groups["bc"].Success)
        {
            throw new JsonException($"'{text}' is before the year 1, which .NET dates cannot hold; map the column to string.");
        }

        var year = int.Parse(match.Groups["y"].Value, CultureInfo.InvariantCulture);
        if (year > 9999)
        {
            throw new JsonException($"'{text}' is after the year 9999, which .NET dates cannot hold; map the column to string.");
        }

        var date = new DateTime(
            year, int.Parse(match.Groups["mo"].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups["d"].Value, CultureInfo.InvariantCulture),
            0, 0, 0, DateTimeKind.Unspecified);
        if (!match.Groups["time"].Success)
        {
            return new Value(Infinity.None, date, false, null);
        }

        return new Value(Infinity.None, date + ParseTimeOfDay(match.Groups["time"].Value), true, ParseOffset(match.Groups["off"]));
    }

    /// <summary>Reads <c>timetz</c> text (<c>13:14:15.5+05:30</c>) as Npgsql does: the time on 0001-01-02 at its offset.</summary>
    public static DateTimeOffset ParseTimeWithZone(string text)
    {
        var match = TimeWithZone().Match(text);
        if (!match.Success)
        {
            throw new JsonException($"'{text}' is not a PostgreSQL timestamptz, timetz or infinity.");
        }

        var offset = ParseOffset(match.Groups["off"])!.Value;
        return new DateTimeOffset(new DateTime(1, 1, 2) + ParseTimeOfDay(match.Groups["time"].Value), WholeMinutes(offset, text));
    }

    public static TimeSpan WholeMinutes(TimeSpan offset, string text) =>
        offset.Ticks % TimeSpan.TicksPerMinute == 0
            ? offset
            : throw new JsonException($"'{text}' has an offset with seconds, which DateTimeOffset cannot hold; map the column to DateTime or string.");

    /// <summary>Reads <c>HH:MM:SS[.ffffff]</c>; the hour may be 24 (<c>time '24:00:00'</c>).</summary>
    public static TimeSpan ParseTimeOfDay(string text) =>
        new TimeSpan(
            int.Parse(text.AsSpan(0, 2), CultureInfo.InvariantCulture) * TimeSpan.TicksPerHour +
            int.Parse(text.AsSpan(3, 2), CultureInfo.InvariantCulture) * TimeSpan.TicksPerMinute +
            int.Parse(text.AsSpan(6, 2), CultureInfo.InvariantCulture) * TimeSpan.TicksPerSecond +
            FractionTicks(text.AsSpan(8)));

    /// <summary>Ticks of a fraction written as <c>.ffffff</c> (empty for none).</summary>
    public static long FractionTicks(ReadOnlySpan<char> fraction)
    {
        if (fraction.IsEmpty)
        {
            return 0;
        }

        var digits = fraction[1..];
        var ticks = long.Parse(digits, CultureInfo.InvariantCulture);
        for (var i = digits.Length; i < 7; i++)
        {
            ticks *= 10;
        }

        return ticks;
    }

    private static TimeSpan? ParseOffset(Group group)
    {
        if (!group.Success)
        {
            return null;
        }

        if (group.Value == "Z")
        {
            return TimeSpan.Zero;
        }

        var digits = group.Value[1..].Split(':');
        var offset = new TimeSpan(
            int.Parse(digits[0], CultureInfo.InvariantCulture),
            digits.Length > 1 ? int.Parse(digits[1], CultureInfo.InvariantCulture) : 0,
            digits.Length > 2 ? int.Parse(digits[2], CultureInfo.InvariantCulture) : 0);
        return group.Value[0] == '-' ? -offset : offset;
    }
}
