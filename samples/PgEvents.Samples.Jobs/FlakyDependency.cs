namespace PgEvents.Samples.Jobs;

/// <summary>Stands for a dependency that fails once for one order, so the sample shows a retry.</summary>
public sealed class FlakyDependency(long failingOrderId)
{
    private int _failed;

    public int Failures => Volatile.Read(ref _failed);

    public void ThrowOnFirstCall(long orderId)
    {
        if (orderId == failingOrderId && Interlocked.Exchange(ref _failed, 1) == 0)
        {
            throw new InvalidOperationException($"Transient failure while handling order {orderId} (simulated).");
        }
    }
}
