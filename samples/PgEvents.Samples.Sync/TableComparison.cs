namespace PgEvents.Samples.Sync;

/// <summary>How one table of the replica compares with the source.</summary>
/// <param name="Table">The table.</param>
/// <param name="SourceRows">Rows in the source.</param>
/// <param name="ReplicaRows">Rows in the replica.</param>
/// <param name="DifferingRows">Ids missing on one side or with different contents.</param>
/// <param name="FirstDifferences">The first few differences, readable.</param>
public sealed record TableComparison(string Table, int SourceRows, int ReplicaRows, int DifferingRows, IReadOnlyList<string> FirstDifferences)
{
    /// <summary>Whether both sides hold exactly the same rows.</summary>
    public bool Matches => DifferingRows == 0;
}
