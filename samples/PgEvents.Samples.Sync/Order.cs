namespace PgEvents.Samples.Sync;

/// <summary>A row of <c>orders</c>; column <c>customer_id</c> binds to <see cref="CustomerId"/>.</summary>
/// <param name="Id">Primary key.</param>
/// <param name="CustomerId">The owning customer.</param>
/// <param name="Amount">numeric(12,2); decimal keeps it exact through JSON.</param>
/// <param name="Status">new, paid, shipped or cancelled.</param>
/// <param name="UpdatedAt">Last change, with the server's offset.</param>
public sealed record Order(long Id, long CustomerId, decimal Amount, string Status, DateTimeOffset UpdatedAt);
