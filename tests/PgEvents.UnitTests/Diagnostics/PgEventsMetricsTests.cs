using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace PgEvents.UnitTests.Diagnostics;

public sealed class PgEventsMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    private IMeterFactory Factory => _services.GetRequiredService<IMeterFactory>();

    public void Dispose() => _services.Dispose();

    private MetricCollector<T> Collect<T>(string instrument, IMeterFactory? factory = null)
        where T : struct =>
        new(factory ?? Factory, "PgEvents", instrument);

    [Fact]
    public void Every_instrument_is_published_under_the_PgEvents_meter_of_the_factory()
    {
        var published = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Scope == Factory)
                {
                    published.Add(instrument);
                }
            },
        };
        listener.Start();

        using var metrics = new PgEventsMetrics(Factory);

        published.Should().OnlyContain(i => i.Meter.Name == "PgEvents" && i.Meter.Version == PgEventsDiagnostics.Version);
        published.Select(i => (i.Name, i.Unit)).Should().BeEquivalentTo(new (string, string?)[]
        {
            ("pgevents.events.delivered", "{event}"),
            ("pgevents.handler.duration", "s"),
            ("pgevents.batch.size", "{event}"),
            ("pgevents.retries", "{attempt}"),
            ("pgevents.reconnects", "{reconnect}"),
            ("pgevents.wakeups", "{wakeup}"),
            ("pgevents.dead_letters", "{event}"),
            ("pgevents.snapshot.rows", "{row}"),
            ("pgevents.lag.events", "{event}"),
            ("pgevents.lag.seconds", "s"),
        });
        published.Should().OnlyContain(i => !string.IsNullOrWhiteSpace(i.Description));
    }

    [Fact]
    public void Counters_and_histograms_record_into_the_factory_meter_with_their_tags()
    {
        using var metrics = new PgEventsMetrics(Factory);
        using var delivered = Collect<long>("pgevents.events.delivered");
        using var duration = Collect<double>("pgevents.handler.duration");
        using var batch = Collect<int>("pgevents.batch.size");
        using var retries = Collect<long>("pgevents.retries");
        using var reconnects = Collect<long>("pgevents.reconnects");
        using var wakeUps = Collect<long>("pgevents.wakeups");
        using var deadLetters = Collect<long>("pgevents.dead_letters");
        using var snapshotRows = Collect<long>("pgevents.snapshot.rows");
        var consumer = new KeyValuePair<string, object?>("pgevents.consumer", "c1");

        metrics.EventsDelivered.Add(3, consumer);
        metrics.HandlerDuration.Record(0.25, consumer);
        metrics.BatchSize.Record(17);
        metrics.Retries.Add(1, consumer);
        metrics.Reconnects.Add(2, consumer);
        metrics.WakeUps.Add(1, new KeyValuePair<string, object?>("pgevents.trigger", "notify"));
        metrics.DeadLetters.Add(4, consumer);
        metrics.SnapshotRows.Add(1000, consumer);

        delivered.LastMeasurement!.Value.Should().Be(3);
        delivered.LastMeasurement.Tags.Should().Contain("pgevents.consumer", "c1");
        duration.LastMeasurement!.Value.Should().Be(0.25);
        batch.LastMeasurement!.Value.Should().Be(17);
        retries.LastMeasurement!.Value.Should().Be(1);
        reconnects.LastMeasurement!.Value.Should().Be(2);
        wakeUps.LastMeasurement!.Tags.Should().Contain("pgevents.trigger", "notify");
        deadLetters.LastMeasurement!.Value.Should().Be(4);
        snapshotRows.LastMeasurement!.Value.Should().Be(1000);
    }

    [Fact]
    public void Lag_gauges_report_only_consumers_whose_source_has_a_sample_tagged_by_consumer_name()
    {
        using var metrics = new PgEventsMetrics(Factory);
        metrics.ObserveLagOf("active", () => new LagSample(42, 1.5));
        metrics.ObserveLagOf("standby", () => null);
        metrics.ObserveLagOf("other", () => new LagSample(0, 0));
        using var events = Collect<long>("pgevents.lag.events");
        using var seconds = Collect<double>("pgevents.lag.seconds");

        events.RecordObservableInstruments();
        seconds.RecordObservableInstruments();

        events.GetMeasurementSnapshot().Select(m => (m.Tags["pgevents.consumer"], m.Value))
            .Should().BeEquivalentTo(new (object?, long)[] { ("active", 42L), ("other", 0L) });
        seconds.GetMeasurementSnapshot().Select(m => (m.Tags["pgevents.consumer"], m.Value))
            .Should().BeEquivalentTo(new (object?, double)[] { ("active", 1.5), ("other", 0.0) });
    }

    [Fact]
    public void Lag_gauges_read_each_source_again_at_every_observation()
    {
        using var metrics = new PgEventsMetrics(Factory);
        LagSample? current = null;
        metrics.ObserveLagOf("c1", () => current);
        using var events = Collect<long>("pgevents.lag.events");

        events.RecordObservableInstruments();
        events.GetMeasurementSnapshot(clear: true).Should().BeEmpty("an inactive consumer reports no lag");

        current = new LagSample(7, 0.1);
        events.RecordObservableInstruments();
        events.GetMeasurementSnapshot(clear: true).Should().ContainSingle().Which.Value.Should().Be(7);

        current = null;
        events.RecordObservableInstruments();
        events.GetMeasurementSnapshot().Should().BeEmpty("a consumer that stopped stops reporting");
    }

    [Fact]
    public void Two_factories_keep_their_metrics_apart()
    {
        using var otherServices = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var otherFactory = otherServices.GetRequiredService<IMeterFactory>();
        using var mine = new PgEventsMetrics(Factory);
        using var theirs = new PgEventsMetrics(otherFactory);
        mine.ObserveLagOf("mine", () => new LagSample(1, 1));
        theirs.ObserveLagOf("theirs", () => new LagSample(2, 2));
        using var myDelivered = Collect<long>("pgevents.events.delivered");
        using var theirDelivered = Collect<long>("pgevents.events.delivered", otherFactory);
        using var myLag = Collect<long>("pgevents.lag.events");

        theirs.EventsDelivered.Add(5);
        mine.EventsDelivered.Add(1);
        myLag.RecordObservableInstruments();

        myDelivered.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(1);
        theirDelivered.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(5);
        myLag.GetMeasurementSnapshot().Should().ContainSingle().Which.Tags["pgevents.consumer"].Should().Be("mine");
    }

    [Fact]
    public void Metrics_made_from_a_factory_leave_its_meter_to_the_factory()
    {
        var metrics = new PgEventsMetrics(Factory);
        using var delivered = Collect<long>("pgevents.events.delivered");

        metrics.Dispose();
        metrics.EventsDelivered.Add(1);

        delivered.LastMeasurement!.Value.Should().Be(1, "the container, not the metrics, disposes a factory's meter");
    }

    [Fact]
    public void Metrics_without_a_factory_own_their_meter_and_dispose_it()
    {
        var metrics = new PgEventsMetrics();
        var meter = metrics.EventsDelivered.Meter;
        var completed = new List<Instrument>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter == meter)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
            MeasurementsCompleted = (instrument, _) => completed.Add(instrument),
        };
        listener.Start();
        meter.Name.Should().Be("PgEvents");
        meter.Scope.Should().BeNull();

        metrics.Dispose();

        completed.Should().HaveCount(10, "disposing the meter completes each of its instruments");
    }
}
