using System.Globalization;
using System.Text.Json;

namespace PgEvents;

/// <summary>
/// Reads PostgreSQL <c>interval</c> text in each IntervalStyle. The capture trigger runs in the
/// writing session, so the text in the log follows that session's IntervalStyle, not the consumer's:
/// <c>postgres</c> (<c>-1 days +02:03:04</c>), <c>postgres_verbose</c> (<c>@ 1 day -2 hours ago</c>),
/// <c>sql_standard</c> (<c>-3 4:05:06.5</c>, <c>+0-1 -1 +0:00:00</c>) and <c>iso_8601</c>
/// (<c>P-1DT2H3M4S</c>). PostgreSQL keeps months, days and microseconds apart (a month has no fixed
/// length, a day may have 23 hours), and so does the result.
/// </summary>
internal static class PgIntervalText
{
    internal readonly record struct Value(int Months, int Days, long Microseconds);

    public static Value Parse(string text)
    {
        try
        {
            var trimmed = text.Trim();
            return trimmed switch
            {
                ['@', ..] => ParseVerbose(trimmed),
                ['P', ..] => ParseIso(trimmed),
                _ when trimmed.Split(' ', StringSplitOptions.RemoveEmptyEntries).Any(t => char.IsLetter(t[0])) => ParsePostgres(trimmed),
                _ => ParseSqlStandard(trimmed),
            };
        }
        catch (Exception e) when (e is FormatException or OverflowException or IndexOutOfRangeException or ArgumentException)
        {
            throw new JsonException($"'{text}' is not PostgreSQL interval text that fits: {e.Message}", e);
        }
    }

    /// <summary><c>1 year 2 mons -3 days +04:05:06.789</c>: each part carries its own sign.</summary>
    private static Value ParsePostgres(string text)
    {
        var tokens = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long months = 0, days = 0, micros = 0;
        for (var i = 0; i < tokens.Length; i++)
        {
            if (tokens[i].Contains(':', StringComparison.Ordinal))
            {
                micros = checked(micros + ParseTime(tokens[i]));
                continue;
            }

            var number = long.Parse(tokens[i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            switch (tokens[++i].TrimEnd('s'))
            {
                case "year": months = checked(months + (number * 12)); break;
                case "mon": months = checked(months + number); break;
                case "day": days = checked(days + number); break;
                default: throw new FormatException($"unknown unit '{tokens[i]}'");
            }
        }

        return Create(months, days, micros);
    }

    /// <summary><c>@ 1 day -2 hours 3.5 secs ago</c>: <c>ago</c> negates every part.</summary>
    private static Value ParseVerbose(string text)
    {
        var tokens = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ago = tokens[^1] == "ago";
        var end = ago ? tokens.Length - 1 : tokens.Length;
        long months = 0, days = 0, micros = 0;
        for (var i = 1; i < end; i++)
        {
            if (i + 1 == end && tokens[i] == "0")
            {
                break;
            }

            var number = decimal.Parse(tokens[i], NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
            switch (tokens[++i].TrimEnd('s'))
            {
                case "year": months = checked(months + ((long)number * 12)); break;
                case "mon": months = checked(months + (long)number); break;
                case "day": days = checked(days + (long)number); break;
                case "hour": micros = checked(micros + ((long)number * 3_600_000_000)); break;
                case "min": micros = checked(micros + ((long)number * 60_000_000)); break;
                case "sec": micros = checked(micros + (long)(number * 1_000_000)); break;
                default: throw new FormatException($"unknown unit '{tokens[i]}'");
            }
        }

        return ago ? Create(-months, -days, -micros) : Create(months, days, micros);
    }

    /// <summary>
    /// <c>1-2</c> (years-months), <c>3 4:05:06</c> (days and time), <c>4:05:06</c>, each with one leading
    /// sign for the whole value; a value that mixes signs or both kinds writes all three parts, each
    /// signed: <c>+1-2 -3 +4:05:06</c>.
    /// </summary>
    private static Value ParseSqlStandard(string text)
    {
        if (text == "0")
        {
            return default;
        }

        var tokens = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (tokens.Length == 3 && tokens[0][0] is '+' or '-')
        {
            var sign = tokens[0][0] == '-' ? -1 : 1;
            var yearMonth = tokens[0][1..].Split('-');
            var months = sign * ((long.Parse(yearMonth[0], CultureInfo.InvariantCulture) * 12) + long.Parse(yearMonth[1], CultureInfo.InvariantCulture));
            return Create(months, long.Parse(tokens[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture), ParseTime(tokens[2]));
        }

        var negative = text[0] == '-';
        if (negative)
        {
            tokens[0] = tokens[0][1..];
        }

        long m = 0, d = 0, us = 0;
        if (tokens.Length == 2)
        {
            d = long.Parse(tokens[0], CultureInfo.InvariantCulture);
            us = ParseTime(tokens[1]);
        }
        else if (tokens[0].Contains(':', StringComparison.Ordinal))
        {
            us = ParseTime(tokens[0]);
        }
        else
        {
            var yearMonth = tokens[0].Split('-');
            m = (long.Parse(yearMonth[0], CultureInfo.InvariantCulture) * 12) + long.Parse(yearMonth[1], CultureInfo.InvariantCulture);
        }

        return negative ? Create(-m, -d, -us) : Create(m, d, us);
    }

    /// <summary><c>P1Y2M3DT-4H5M6.789S</c>: each part carries its own sign.</summary>
    private static Value ParseIso(string text)
    {
        long months = 0, days = 0, micros = 0;
        var inTime = false;
        var start = 1;
        for (var i = 1; i < text.Length; i++)
        {
            var c = text[i];
            if (c == 'T')
            {
                inTime = true;
                start = i + 1;
                continue;
            }

            if (!char.IsLetter(c))
            {
                continue;
            }

            var number = decimal.Parse(text.AsSpan(start, i - start), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
            start = i + 1;
            switch (inTime, c)
            {
                case (false, 'Y'): months = checked(months + ((long)number * 12)); break;
                case (false, 'M'): months = checked(months + (long)number); break;
                case (false, 'W'): days = checked(days + ((long)number * 7)); break;
                case (false, 'D'): days = checked(days + (long)number); break;
                case (true, 'H'): micros = checked(micros + ((long)number * 3_600_000_000)); break;
                case (true, 'M'): micros = checked(micros + ((long)number * 60_000_000)); break;
                case (true, 'S'): micros = checked(micros + (long)(number * 1_000_000)); break;
                default: throw new FormatException($"unknown designator '{c}'");
            }
        }

        return Create(months, days, micros);
    }

    /// <summary><c>[+-]H:MM:SS[.ffffff]</c>, the hours unbounded; the sign covers the whole time.</summary>
    private static long ParseTime(string token)
    {
        var negative = token[0] == '-';
        var parts = token.TrimStart('+', '-').Split(':');
        var seconds = decimal.Parse(parts[2], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
        var micros = checked((long.Parse(parts[0], CultureInfo.InvariantCulture) * 3_600_000_000) +
            (long.Parse(parts[1], CultureInfo.InvariantCulture) * 60_000_000) + (long)(seconds * 1_000_000));
        return negative ? -micros : micros;
    }

    /// <summary>Writes ISO 8601 (<c>P1M-2DT0.000003S</c>), which PostgreSQL reads whatever the IntervalStyle.</summary>
    public static string Format(Value value) =>
        string.Create(CultureInfo.InvariantCulture, $"P{value.Months}M{value.Days}DT{value.Microseconds / 1_000_000m}S");

    private static Value Create(long months, long days, long micros) => new(checked((int)months), checked((int)days), micros);
}
