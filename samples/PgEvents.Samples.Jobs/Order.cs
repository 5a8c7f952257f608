namespace PgEvents.Samples.Jobs;

/// <summary>A row of <c>orders</c>.</summary>
/// <param name="Id">Primary key.</param>
/// <param name="Customer">Who receives the receipt.</param>
/// <param name="Total">numeric(12,2); decimal keeps it exact through JSON.</param>
/// <param name="Status">new, paid or cancelled.</param>
public sealed record Order(long Id, string Customer, decimal Total, string Status);
