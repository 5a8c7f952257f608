namespace PgEvents.Samples.Sync;

/// <summary>A row of <c>customers</c>; column <c>created_at</c> binds to <see cref="CreatedAt"/>.</summary>
/// <param name="Id">Primary key.</param>
/// <param name="Name">Display name.</param>
/// <param name="Email">Contact address.</param>
/// <param name="CreatedAt">
/// A <see cref="DateTimeOffset"/> rather than a <see cref="DateTime"/>: the JSON image carries the
/// server's offset, and a DateTime would silently turn it into local time.
/// </param>
public sealed record Customer(long Id, string Name, string Email, DateTimeOffset CreatedAt);
