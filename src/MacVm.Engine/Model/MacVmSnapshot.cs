namespace MacVm;

/// <summary>
/// A saved machine state with the disk layer that belongs to it. Stored as
/// snapshots/&lt;name&gt;/snapshot.json beside state.bin and disk.qcow2; restores read only these files.
/// </summary>
public sealed record MacVmSnapshot
{
    /// <summary>Format version of this document.</summary>
    public int SchemaVersion { get; init; } = 1;

    /// <summary>The snapshot's name (unique in the store).</summary>
    public required string Name { get; init; }

    /// <summary>The VM it was saved from.</summary>
    public required string SourceVm { get; init; }

    /// <summary>The driver that saved it; only that driver can restore it.</summary>
    public VmDriverKind Driver { get; init; }

    /// <summary>The image the VM was made from.</summary>
    public required string Image { get; init; }

    /// <summary>The image's digest (snapshot caches key on it).</summary>
    public required string ImageDigest { get; init; }

    /// <summary>The configuration restored VMs get (same device layout, memory and CPUs: a state only loads into the identical machine).</summary>
    public required VmConfiguration Configuration { get; init; }

    /// <summary>When it was saved (UTC).</summary>
    public DateTimeOffset CreatedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>Every file of the snapshot with its size and checksum, checked before a restore.</summary>
    public required IReadOnlyList<SnapshotFile> Files { get; init; }

    /// <summary>Total size of the files.</summary>
    public long SizeBytes => Files.Sum(f => f.SizeBytes);

    /// <summary>Memory of the saved VM in MiB.</summary>
    public int MemoryMB => Configuration.MemoryMB;

    /// <summary>The snapshot's folder; set when read from a store, not saved.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Path { get; init; }

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>One file of a snapshot.</summary>
/// <param name="Name">File name inside the snapshot folder.</param>
/// <param name="Role">
/// state (the machine state), memory (the guest's RAM as a flat image, mapped by restores; QEMU),
/// disk (the frozen disk layer) or auxiliary-storage (a macOS guest's NVRAM).
/// </param>
/// <param name="SizeBytes">Size in bytes.</param>
/// <param name="Checksum">
/// "crc64:" and the CRC-64/ECMA-182 of the content in 16 lower-case hex digits; snapshots saved before
/// version 0.2 carry "sha256:" and a SHA-256.
/// </param>
public sealed record SnapshotFile(string Name, string Role, long SizeBytes, string Checksum)
{
    /// <summary>The machine state.</summary>
    public const string StateRole = "state";
    /// <summary>The guest's memory image.</summary>
    public const string MemoryRole = "memory";
    /// <summary>The frozen disk layer.</summary>
    public const string DiskRole = "disk";

    /// <summary>
    /// Reads the checksum field of manifests written before 0.2 (a bare SHA-256); never written.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public string? Sha256
    {
        get => null;
        init
        {
            if (string.IsNullOrEmpty(Checksum) && value is not null) Checksum = "sha256:" + value;
        }
    }

    /// <summary>True for the files a restore loads into the hypervisor (state, memory): damage there means a cold boot, not an error.</summary>
    public bool IsMachineState => Role is StateRole or MemoryRole;
}

/// <summary>A machine state to load at the VM's next start, written into vm.json by a restore.</summary>
public sealed record RestoreSpec
{
    /// <summary>The snapshot it comes from.</summary>
    public required string Snapshot { get; init; }

    /// <summary>Absolute path of the state file.</summary>
    public required string StatePath { get; init; }

    /// <summary>
    /// Absolute path of the guest's memory image when the snapshot has one (QEMU): the restored VM maps it
    /// copy-on-write instead of reading its memory from the state file.
    /// </summary>
    public string? MemoryPath { get; init; }

    /// <summary>On a failed load, fail instead of cold-booting the same disk.</summary>
    public bool NoFallback { get; init; }
}
