using System.Diagnostics.Metrics;

namespace PgEvents;

/// <summary>Feeds the lag gauges from the last measurement of every live consumer.</summary>
internal static class ConsumerLag
{
    private static readonly List<WeakReference<PgEventConsumer>> Consumers = [];

    public static void Register(PgEventConsumer consumer)
    {
        lock (Consumers)
        {
            Consumers.RemoveAll(r => !r.TryGetTarget(out _));
            Consumers.Add(new WeakReference<PgEventConsumer>(consumer));
        }
    }

    public static IEnumerable<Measurement<T>> Observe<T>(Func<LagSample, T> select)
        where T : struct
    {
        lock (Consumers)
        {
            var measurements = new List<Measurement<T>>();
            foreach (var reference in Consumers)
            {
                if (reference.TryGetTarget(out var consumer) && consumer.LastLag is { } lag)
                {
                    measurements.Add(new Measurement<T>(select(lag), new KeyValuePair<string, object?>("pgevents.consumer", consumer.Name)));
                }
            }

            return measurements;
        }
    }
}
