using System.Security.Cryptography;
using System.Text;

namespace PgEvents;

/// <summary>Validated schema options with every derived name PgEvents puts into SQL.</summary>
internal sealed class SchemaSettings
{
    public SchemaSettings(string schemaName, string notificationChannel, bool captureReplicaWrites = true)
    {
        CaptureReplicaWrites = captureReplicaWrites;
        SchemaName = SqlIdentifier.ValidateSchemaName(schemaName, nameof(schemaName));
        NotificationChannel = SqlIdentifier.Validate(notificationChannel, nameof(notificationChannel));
        Schema = SqlIdentifier.Quote(schemaName);

        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(schemaName)))[..16].ToLowerInvariant();

        // Transaction-local marker used by the capture triggers; a custom setting name must be a
        // plain dotted identifier, so it is derived from a hash rather than the schema name.
        TransactionKey = "pgevents.tx_" + hash;

        // Trigger names are per installation so two PgEvents schemas can track the same table.
        TriggerPrefix = schemaName == PgEventsSchemaOptions.DefaultSchemaName ? "pgevents" : "pgevents_" + hash;

        // Two-key advisory lock: a constant class id and a per-schema id.
        InstallLockKey = DeriveKey("install", schemaName);

        // The commit lock's key carries a transaction id in its low half, so the schema can only own
        // the high half: a class of its own, kept non-negative so SQL can shift it as a bigint.
        CommitLockClass = DeriveKey("commit", schemaName) & int.MaxValue;

        // Held shared by every sleeping consumer of the installation; writers ring when they cannot take it.
        DoorbellKey = DeriveKey("doorbell", schemaName);

        // Held by the one snapshot chunk transaction of the installation that is in its commit phase.
        SnapshotKey = DeriveKey("snapshot", schemaName);
    }

    public static SchemaSettings From(PgEventsSchemaOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new SchemaSettings(options.SchemaName, options.NotificationChannel, options.CaptureReplicaWrites);
    }

    /// <summary>The schema name as stored in the catalog.</summary>
    public string SchemaName { get; }

    /// <summary>The schema name as a quoted SQL identifier.</summary>
    public string Schema { get; }

    public string NotificationChannel { get; }

    /// <summary>Whether capture triggers fire for sessions with <c>session_replication_role = replica</c>.</summary>
    public bool CaptureReplicaWrites { get; }

    public string TransactionKey { get; }

    public string TriggerPrefix { get; }

    public int InstallLockKey { get; }

    /// <summary>
    /// High 32 bits of the transaction-level advisory lock a transaction holds from just before it
    /// takes a position until its commit is visible; the low 32 bits are its xid.
    /// </summary>
    public int CommitLockClass { get; }

    /// <summary>Second key of the doorbell lock (the first is <see cref="AdvisoryLockClass"/>).</summary>
    public int DoorbellKey { get; }

    /// <summary>Second key of the lock that keeps snapshot chunk transactions one at a time (the first is <see cref="AdvisoryLockClass"/>).</summary>
    public int SnapshotKey { get; }

    /// <summary>Advisory lock class id shared by every PgEvents lock ("PgEv").</summary>
    public const int AdvisoryLockClass = 0x50674576;

    /// <summary>A stable advisory lock key for one purpose within one installation.</summary>
    public static int DeriveKey(string purpose, string name) =>
        BitConverter.ToInt32(SHA256.HashData(Encoding.UTF8.GetBytes(purpose + ":" + name)), 0);

    /// <summary>Qualifies a PgEvents object name with the quoted schema.</summary>
    public string Qualify(string objectName) => Schema + "." + SqlIdentifier.Quote(objectName);
}
