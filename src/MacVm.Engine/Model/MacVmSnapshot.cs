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

    /// <summary>Every file of the snapshot with its size and sha256, checked before a restore.</summary>
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
/// <param name="Role">state (the machine state) or disk (the frozen disk layer).</param>
/// <param name="SizeBytes">Size in bytes.</param>
/// <param name="Sha256">Lower-case hex sha256 of the content.</param>
public sealed record SnapshotFile(string Name, string Role, long SizeBytes, string Sha256);

/// <summary>A machine state to load at the VM's next start, written into vm.json by a restore.</summary>
public sealed record RestoreSpec
{
    /// <summary>The snapshot it comes from.</summary>
    public required string Snapshot { get; init; }

    /// <summary>Absolute path of the state file.</summary>
    public required string StatePath { get; init; }

    /// <summary>On a failed load, fail instead of cold-booting the same disk.</summary>
    public bool NoFallback { get; init; }
}
