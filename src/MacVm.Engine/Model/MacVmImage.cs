namespace MacVm;

/// <summary>A named, content-addressed image that VMs are made from. Stored as images/&lt;name&gt;/image.json.</summary>
public sealed record MacVmImage
{
    /// <summary>Format version of this document.</summary>
    public int SchemaVersion { get; init; } = 1;

    /// <summary>The image's name.</summary>
    public required string Name { get; init; }

    /// <summary>What the image holds.</summary>
    public ImageKind Kind { get; init; }

    /// <summary>sha256 over the image's files (name and content); snapshot caches key on it.</summary>
    public required string Digest { get; init; }

    /// <summary>Kernel file name inside the image folder.</summary>
    public string? Kernel { get; init; }

    /// <summary>Initramfs file name inside the image folder.</summary>
    public string? Initrd { get; init; }

    /// <summary>Disk file name (qcow2 or raw) inside the image folder.</summary>
    public string? Disk { get; init; }

    /// <summary>Format of <see cref="Disk"/>: qcow2 or raw.</summary>
    public string? DiskFormat { get; init; }

    /// <summary>Kernel command line for kernel images.</summary>
    public string? KernelCommandLine { get; init; }

    /// <summary>Whether the guest runs the MacVm guest agent.</summary>
    public bool GuestAgent { get; init; }

    /// <summary>The serial-console line that says the guest is up, if known.</summary>
    public string? ReadyMarker { get; init; }

    /// <summary>macOS images: the file holding the VZMacHardwareModel data representation.</summary>
    public string? HardwareModel { get; init; }

    /// <summary>macOS images: the file holding the VZMacMachineIdentifier data representation (ECID).</summary>
    public string? MachineIdentifier { get; init; }

    /// <summary>macOS images: the auxiliary storage (NVRAM) every VM starts from (each VM gets its own copy).</summary>
    public string? AuxiliaryStorage { get; init; }

    /// <summary>Where the image came from when it was imported from another tool (e.g. a Tart VM folder).</summary>
    public string? Source { get; init; }

    /// <summary>Total size of the image's files in bytes.</summary>
    public long SizeBytes { get; init; }

    /// <summary>When the image was imported (UTC).</summary>
    public DateTimeOffset ImportedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The image's folder; set when read from a store, not saved.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Path { get; init; }

    /// <summary>The first 12 hex digits of the digest, as shown in tables and cache keys.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string ShortDigest => Digest.StartsWith("sha256:", StringComparison.Ordinal) ? Digest.Substring(7, 12) : Digest;
}
