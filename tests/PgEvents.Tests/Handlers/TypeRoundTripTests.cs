using System.Collections;
using System.Net;
using System.Net.NetworkInformation;
using System.Text.Json;
using NpgsqlTypes;
using PgEvents.Tests.Infrastructure;

namespace PgEvents.Tests.Handlers;

public sealed record ScalarRow(
    long Id, byte[]? Data, DateTimeOffset? At, DateTime? AtUtc, DateTime? Local, DateOnly? Day, DateTime? DayTime, double? D, float? F, decimal? N,
    TimeOnly? T, TimeSpan? TSpan, DateTimeOffset? Tz, Guid? U, IPAddress? Ip, NpgsqlInet? Net, IPNetwork? Cidr, PhysicalAddress? Mac, BitArray? Bits,
    NpgsqlPoint? P, string? Js, JsonElement? Jb, string? Doc, string? Cash, Dictionary<string, string?>? Hs);

public sealed record IntervalRow(long Id, string Style, TimeSpan? Span, NpgsqlInterval? Whole);

public enum Mood
{
    Happy,
    Sad,
}

public sealed record Address(string Street, int? No, string?[]? Tags, DateTime? At);

public sealed record StructuredRow(
    long Id, string?[]? Tags, int?[]? Nums, int[][]? Grid, Mood?[]? Moods, Mood? Mood, NpgsqlRange<int>? R, NpgsqlRange<long>? Unbounded,
    NpgsqlRange<decimal>? Nr, NpgsqlRange<DateOnly>? Dr, NpgsqlRange<DateTime>? Tr, Address? Home, List<Address>? Homes, byte[][]? Blobs,
    TimeSpan[]? Spans);

public sealed record MonthsInSpanRow(long Id, TimeSpan Span);

public sealed record RefusedRow(
    long Id, decimal Cash, DateTimeOffset Local, Guid Data, NpgsqlRange<DateTime> R, int Words, string Tags, TimeSpan Day, IPAddress Net, bool Mood);

public sealed class TypeRoundTripTests(DatabaseFixture db) : IClassFixture<DatabaseFixture>
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    private static T[] Rows<T>(ConsumerHost host) => host.Sink.Deliveries.Select(d => (T)d.Row!).ToArray();

    [Fact]
    public async Task Scalar_types_arrive_as_Npgsqls_natural_types_including_empty_bytea_infinities_and_NaN()
    {
        await db.ExecuteAsync(
            """
            CREATE EXTENSION IF NOT EXISTS hstore;
            CREATE TABLE rt_scalar (id bigint PRIMARY KEY, data bytea, at timestamptz, at_utc timestamptz, local timestamp, day date, day_time date,
              d float8, f float4, n numeric, t time, t_span time, tz timetz, u uuid, ip inet, net inet, cidr cidr, mac macaddr, bits varbit,
              p point, js json, jb jsonb, doc xml, cash money, hs hstore);
            """);
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<ScalarRow, RecordingHandler<ScalarRow>>("rt_scalar"),
            o => o.ConsumerName = "rt_scalar").StartAsync();

        await db.ExecuteAsync(
            """
            BEGIN;
            -- The writer's time zone shows in the text of timestamptz; the values must not depend on it.
            SET LOCAL timezone = 'Asia/Kolkata';
            INSERT INTO rt_scalar (id, data, at, at_utc, local, day, day_time, d, f, n, t, t_span, tz, u, ip, net, cidr, mac, bits, p, js, jb, doc, cash, hs)
            VALUES (1, '\x', 'infinity', 'infinity', 'infinity', 'infinity', 'infinity', 'NaN', 'NaN', null, '00:00', '24:00',
                    '13:14:15.5+05:30', '6f9619ff-8b86-d011-b42d-00c04fc964ff', '10.1.2.3', '10.1.2.3/8', '10.0.0.0/8', '08:00:2b:01:02:03', B'1011',
                    '(1.5,-2)', '{"b": [1, 2], "a": null}', '{"k": "v"}', '<a>1</a>', 1234.5, 'a=>1, b=>NULL'),
                   (2, '\x00ff', '-infinity', '-infinity', '-infinity', '-infinity', '-infinity', 'Infinity', '-Infinity', 1.50, '23:59:59.999999',
                    '23:59:59.999999', '00:00-08', null, '::1', '2001:db8::1/64', '2001:db8::/32', null, B'', '(0,0)', '"text"', '[1, "x"]', null, null, ''),
                   (3, '\xdeadbeef', '2024-01-02 03:04:05.123456+00', '2024-01-02 03:04:05.123456+00', '2024-01-02 03:04:05.123456', '2024-02-29',
                    '2024-02-29', 1e300, 0.1, 12345678901234567890.1234567, '13:14:15.5', '13:14:15.5', '13:14:15+00', null, null, null, null, null,
                    null, null, '12', 'true', null, null, null);
            COMMIT;
            """);
        await host.Sink.WaitForCountAsync(3, Wait);

        var rows = Rows<ScalarRow>(host);
        rows[0].Data.Should().BeEmpty();
        rows[0].At.Should().Be(DateTimeOffset.MaxValue);
        rows[0].AtUtc.Should().Be(DateTime.MaxValue);
        rows[0].Local.Should().Be(DateTime.MaxValue);
        rows[0].Day.Should().Be(DateOnly.MaxValue);
        rows[0].DayTime.Should().Be(DateTime.MaxValue);
        double.IsNaN(rows[0].D!.Value).Should().BeTrue();
        float.IsNaN(rows[0].F!.Value).Should().BeTrue();
        rows[0].T.Should().Be(TimeOnly.MinValue);
        rows[0].TSpan.Should().Be(TimeSpan.FromHours(24));
        rows[0].Tz.Should().Be(new DateTimeOffset(1, 1, 2, 13, 14, 15, 500, TimeSpan.FromMinutes(330)));
        rows[0].Tz!.Value.Offset.Should().Be(TimeSpan.FromMinutes(330));
        rows[0].U.Should().Be(Guid.Parse("6f9619ff-8b86-d011-b42d-00c04fc964ff"));
        rows[0].Ip.Should().Be(IPAddress.Parse("10.1.2.3"));
        rows[0].Net.Should().Be(new NpgsqlInet(IPAddress.Parse("10.1.2.3"), 8));
        rows[0].Cidr.Should().Be(IPNetwork.Parse("10.0.0.0/8"));
        rows[0].Mac.Should().Be(PhysicalAddress.Parse("08-00-2B-01-02-03"));
        rows[0].Bits!.Cast<bool>().Should().Equal(true, false, true, true);
        rows[0].P.Should().Be(new NpgsqlPoint(1.5, -2));
        rows[0].Js.Should().Be("""{"a": null, "b": [1, 2]}""", "json is logged as jsonb, whose text sorts keys");
        rows[0].Jb!.Value.GetProperty("k").GetString().Should().Be("v");
        rows[0].Doc.Should().Be("<a>1</a>");
        rows[0].Cash.Should().Be("$1,234.50", "money is its locale text");
        rows[0].Hs.Should().BeEquivalentTo(new Dictionary<string, string?> { ["a"] = "1", ["b"] = null });

        rows[1].Data.Should().Equal(0x00, 0xff);
        rows[1].At.Should().Be(DateTimeOffset.MinValue);
        rows[1].AtUtc.Should().Be(DateTime.MinValue);
        rows[1].Local.Should().Be(DateTime.MinValue);
        rows[1].Day.Should().Be(DateOnly.MinValue);
        rows[1].DayTime.Should().Be(DateTime.MinValue);
        rows[1].D.Should().Be(double.PositiveInfinity);
        rows[1].F.Should().Be(float.NegativeInfinity);
        rows[1].N.Should().Be(1.50m);
        rows[1].N!.Value.Scale.Should().Be(2);
        rows[1].T.Should().Be(new TimeOnly(23, 59, 59).Add(TimeSpan.FromTicks(9_999_990)));
        rows[1].Tz.Should().Be(new DateTimeOffset(1, 1, 2, 0, 0, 0, TimeSpan.FromHours(-8)));
        rows[1].Ip.Should().Be(IPAddress.IPv6Loopback);
        rows[1].Net.Should().Be(new NpgsqlInet(IPAddress.Parse("2001:db8::1"), 64));
        rows[1].Cidr.Should().Be(IPNetwork.Parse("2001:db8::/32"));
        rows[1].Bits!.Length.Should().Be(0);
        rows[1].Js.Should().Be("text", "a JSON string is its value");
        rows[1].Jb!.Value.GetRawText().Should().Be("""[1, "x"]""");
        rows[1].Hs.Should().BeEmpty();

        var instant = new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc).AddTicks(1_234_560);
        rows[2].Data.Should().Equal(0xde, 0xad, 0xbe, 0xef);
        rows[2].At.Should().Be(new DateTimeOffset(instant));
        rows[2].At!.Value.Offset.Should().Be(TimeSpan.Zero, "Npgsql reads timestamptz in UTC");
        rows[2].AtUtc.Should().Be(instant);
        rows[2].AtUtc!.Value.Kind.Should().Be(DateTimeKind.Utc);
        rows[2].Local.Should().Be(DateTime.SpecifyKind(instant, DateTimeKind.Unspecified));
        rows[2].Local!.Value.Kind.Should().Be(DateTimeKind.Unspecified);
        rows[2].Day.Should().Be(new DateOnly(2024, 2, 29));
        rows[2].DayTime.Should().Be(new DateTime(2024, 2, 29));
        rows[2].D.Should().Be(1e300);
        rows[2].F.Should().Be(0.1f);
        rows[2].N.Should().Be(12345678901234567890.1234567m);
        rows[2].T.Should().Be(new TimeOnly(13, 14, 15, 500));
        rows[2].TSpan.Should().Be(new TimeSpan(0, 13, 14, 15, 500));
        rows[2].Tz.Should().Be(new DateTimeOffset(1, 1, 2, 13, 14, 15, TimeSpan.Zero));
        rows[2].Js.Should().Be("12");
        rows[2].Jb!.Value.GetBoolean().Should().BeTrue();
    }

    [Theory]
    [InlineData("postgres")]
    [InlineData("postgres_verbose")]
    [InlineData("sql_standard")]
    [InlineData("iso_8601")]
    public async Task Intervals_read_exactly_whatever_the_writers_IntervalStyle(string style)
    {
        var table = "rt_interval_" + style;
        await db.ExecuteAsync($"CREATE TABLE {table} (id bigint PRIMARY KEY, style text NOT NULL, span interval, whole interval)");
        await using var host = await ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<IntervalRow, RecordingHandler<IntervalRow>>(table),
            o => o.ConsumerName = table).StartAsync();
        (string Sql, TimeSpan Span)[] spans =
        [
            ("0", TimeSpan.Zero),
            ("-1 days +02:03:04", -TimeSpan.FromDays(1) + new TimeSpan(2, 3, 4)),
            ("-3 days -04:05:06.5", -new TimeSpan(3, 4, 5, 6, 500)),
            ("1 day -1 second", TimeSpan.FromDays(1) - TimeSpan.FromSeconds(1)),
            ("-0.000001 seconds", -TimeSpan.FromTicks(10)),
            ("25 hours", TimeSpan.FromHours(25)),
            ("3 days", TimeSpan.FromDays(3)),
            ("-3 days", TimeSpan.FromDays(-3)),
            ("1 day 2 hours", new TimeSpan(1, 2, 0, 0)),
            ("-1 day -02:03:04", -new TimeSpan(1, 2, 3, 4)),
            ("5 seconds", TimeSpan.FromSeconds(5)),
            ("123456 hours 7 minutes 8.000009 seconds", TimeSpan.FromHours(123456) + new TimeSpan(0, 7, 8) + TimeSpan.FromTicks(90)),
        ];
        (string Sql, NpgsqlInterval Full)[] fulls =
        [
            ("1 year 2 mons 3 days 04:05:06.789", new NpgsqlInterval(14, 3, 14_706_789_000)),
            ("-1 mon", new NpgsqlInterval(-1, 0, 0)),
            ("1 mon -1 day", new NpgsqlInterval(1, -1, 0)),
            ("-1 year -2 mons", new NpgsqlInterval(-14, 0, 0)),
            ("-1 year +2 mons -3 days +00:00:01", new NpgsqlInterval(-10, -3, 1_000_000)),
            ("178000000 years", new NpgsqlInterval(2_136_000_000, 0, 0)),
            ("-1 days +02:03:04", new NpgsqlInterval(0, -1, 7_384_000_000)),
            ("25 hours", new NpgsqlInterval(0, 0, 90_000_000_000)),
            ("-0.000001 seconds", new NpgsqlInterval(0, 0, -1)),
        ];
        var values = spans.Select((s, i) => $"({i}, '{style}', '{s.Sql}', '{s.Sql}')")
            .Concat(fulls.Select((f, i) => $"({100 + i}, '{style}', null, '{f.Sql}')"));

        await db.ExecuteAsync($"BEGIN; SET LOCAL intervalstyle = '{style}'; INSERT INTO {table} VALUES {string.Join(", ", values)}; COMMIT;");
        await host.Sink.WaitForCountAsync(spans.Length + fulls.Length, Wait);

        var rows = Rows<IntervalRow>(host);
        rows.Take(spans.Length).Select(r => r.Span).Should().Equal(spans.Select(s => (TimeSpan?)s.Span));
        rows.Skip(spans.Length).Select(r => r.Whole).Should().Equal(fulls.Select(f => (NpgsqlInterval?)f.Full));
    }

    [Fact]
    public async Task Arrays_with_nulls_enums_ranges_and_composites_arrive_whole()
    {
        await db.ExecuteAsync(
            """
            CREATE TYPE rt_mood AS ENUM ('Happy', 'Sad');
            CREATE TYPE rt_address AS (street text, no int, tags text[], at timestamp);
            CREATE TABLE rt_structured (id bigint PRIMARY KEY, tags text[], nums int[], grid int[][], moods rt_mood[], mood rt_mood, r int4range,
              unbounded int8range, nr numrange, dr daterange, tr tsrange, home rt_address, homes rt_address[], blobs bytea[], spans interval[]);
            """);
        await using var host = await ConsumerHost.Create(db.ConnectionString,
            b => b.AddHandler<StructuredRow, RecordingHandler<StructuredRow>>("rt_structured"), o => o.ConsumerName = "rt_structured").StartAsync();

        await db.ExecuteAsync(
            """
            INSERT INTO rt_structured VALUES
              (1, '{a,NULL,"b \"q\""}', '{1,NULL,3}', '{{1,2},{3,4}}', '{Happy,NULL,Sad}', 'Sad', '[1,5)', '(,5]', '[1.5,2.5]',
               '[2024-01-01,2024-02-01)', '["2024-01-01 10:00","infinity")', ROW('Main "St"', 5, '{x,NULL}', 'infinity'),
               ARRAY[ROW('x', NULL, NULL, '2024-01-01 00:00')::rt_address], '{"\\x",NULL,"\\x00ff"}', '{"1 day","-00:00:01"}'),
              (2, '{}', NULL, NULL, NULL, NULL, 'empty', '[3,)', 'empty', '(,)', '(,"2024-03-04 05:06:07.5"]', NULL, '{}', NULL, NULL);
            """);
        await host.Sink.WaitForCountAsync(2, Wait);

        var rows = Rows<StructuredRow>(host);
        rows[0].Tags.Should().Equal("a", null, "b \"q\"");
        rows[0].Nums.Should().Equal(1, null, 3);
        rows[0].Grid.Should().BeEquivalentTo(new[] { new[] { 1, 2 }, new[] { 3, 4 } }, o => o.WithStrictOrdering());
        rows[0].Moods.Should().Equal(Mood.Happy, null, Mood.Sad);
        rows[0].Mood.Should().Be(Mood.Sad);
        rows[0].R.Should().Be(new NpgsqlRange<int>(1, true, 5, false));
        rows[0].Unbounded.Should().Be(new NpgsqlRange<long>(0, false, true, 6, false, false), "PostgreSQL normalizes (,5] to (,6)");
        rows[0].Nr.Should().Be(new NpgsqlRange<decimal>(1.5m, true, 2.5m, true));
        rows[0].Dr.Should().Be(new NpgsqlRange<DateOnly>(new DateOnly(2024, 1, 1), true, new DateOnly(2024, 2, 1), false));
        rows[0].Tr.Should().Be(new NpgsqlRange<DateTime>(new DateTime(2024, 1, 1, 10, 0, 0), true, DateTime.MaxValue, false));
        rows[0].Home.Should().BeEquivalentTo(new Address("Main \"St\"", 5, ["x", null], DateTime.MaxValue));
        rows[0].Homes.Should().BeEquivalentTo([new Address("x", null, null, new DateTime(2024, 1, 1))]);
        rows[0].Blobs.Should().BeEquivalentTo(new[] { Array.Empty<byte>(), null, new byte[] { 0, 255 } }, o => o.WithStrictOrdering());
        rows[0].Spans.Should().Equal(TimeSpan.FromDays(1), TimeSpan.FromSeconds(-1));

        rows[1].Tags.Should().BeEmpty();
        rows[1].Nums.Should().BeNull();
        rows[1].R.Should().Be(NpgsqlRange<int>.Empty);
        rows[1].R!.Value.IsEmpty.Should().BeTrue();
        rows[1].Unbounded.Should().Be(new NpgsqlRange<long>(3, true, false, 0, false, true));
        rows[1].Nr!.Value.IsEmpty.Should().BeTrue();
        rows[1].Dr.Should().Be(new NpgsqlRange<DateOnly>(default, false, true, default, false, true));
        rows[1].Tr.Should().Be(new NpgsqlRange<DateTime>(default, false, true, new DateTime(2024, 3, 4, 5, 6, 7, 500), true, false));
        rows[1].Homes.Should().BeEmpty();
    }

    [Fact]
    public async Task A_value_that_cannot_fit_blocks_the_consumer_naming_the_column_and_the_value()
    {
        await db.ExecuteAsync("CREATE TABLE rt_months (id bigint PRIMARY KEY, span interval NOT NULL)");
        await using var host = await ConsumerHost.Create(db.ConnectionString,
            b => b.AddHandler<MonthsInSpanRow, RecordingHandler<MonthsInSpanRow>>("rt_months"), o => o.ConsumerName = "rt_months").StartAsync();

        await db.ExecuteAsync("INSERT INTO rt_months VALUES (1, '36 hours'), (2, '1 mon 2 days')");
        var status = await Eventually.UntilAsync(() => host.Consumer.GetStatusAsync(), s => s.Blocked is { Attempts: >= 2 },
            "the consumer should block on the interval with months");

        status.Blocked!.LastError.Should().Contain("\"public\".\"rt_months\"").And.Contain("at column 'span'")
            .And.Contain("interval '1 mon 2 days' has months").And.Contain("NpgsqlInterval");
        Rows<MonthsInSpanRow>(host).Should().Equal(new MonthsInSpanRow(1, TimeSpan.FromHours(36)));
    }

    [Fact]
    public async Task Start_refuses_each_property_type_that_can_never_hold_its_column_naming_the_types_that_can()
    {
        await db.ExecuteAsync(
            """
            CREATE TYPE rt_refused_mood AS ENUM ('a');
            CREATE TABLE rt_refused (id bigint PRIMARY KEY, cash money, local timestamp, data bytea, r int4range, words tsvector, tags text[],
              day date, net cidr, mood rt_refused_mood);
            """);
        await using var host = ConsumerHost.Create(db.ConnectionString, b => b.AddHandler<RefusedRow, RecordingHandler<RefusedRow>>("rt_refused"),
            o => o.ConsumerName = "rt_refused");
        using var deadline = new CancellationTokenSource(Wait);

        var run = () => host.Consumer.RunAsync(deadline.Token);

        var message = (await run.Should().ThrowAsync<PgEventsException>()).Which.Message;
        message.Should().Contain("RefusedRow.Cash is Decimal but column 'cash' of \"public\".\"rt_refused\" is money, which reads into String")
            .And.Contain("lc_monetary").And.Contain("change the column to numeric");
        message.Should().Contain("RefusedRow.Local is DateTimeOffset but column 'local' of \"public\".\"rt_refused\" is timestamp without time zone, which reads into DateTime, String")
            .And.Contain("make the column timestamptz");
        message.Should().Contain("RefusedRow.Data is Guid but column 'data'").And.Contain("is bytea, which reads into Byte[], String");
        message.Should().Contain("RefusedRow.R is NpgsqlRange<DateTime> but column 'r'").And.Contain("is int4range, which reads into NpgsqlRange<T> (T one of Int16, Int32");
        message.Should().Contain("RefusedRow.Words is Int32 but column 'words'").And.Contain("is tsvector, which reads into String");
        message.Should().Contain("RefusedRow.Tags is String but column 'tags'").And.Contain("is text[], which reads into arrays or lists of");
        message.Should().Contain("RefusedRow.Day is TimeSpan but column 'day'").And.Contain("is date, which reads into DateOnly, DateTime, String");
        message.Should().Contain("RefusedRow.Net is IPAddress but column 'net'").And.Contain("is cidr, which reads into IPNetwork, NpgsqlInet, String");
        message.Should().Contain("RefusedRow.Mood is Boolean but column 'mood'").And.Contain("is rt_refused_mood, which reads into string or a .NET enum");
        message.Should().NotContain("RefusedRow.Id");
        message.Split('\n').Count(line => line.StartsWith(" - ", StringComparison.Ordinal)).Should().Be(9, message);
    }
}
