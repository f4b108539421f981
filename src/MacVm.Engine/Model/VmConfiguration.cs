using System.Text.Json.Serialization;

namespace MacVm;

/// <summary>
/// The saved configuration of one VM: what its host process needs to start it. Pure data: it
/// round-trips through JSON (<see cref="ModelJson"/>) and knows nothing of processes or hypervisors.
/// </summary>
public sealed record VmConfiguration
{
    /// <summary>Format version of this document, bumped on incompatible change.</summary>
    public int SchemaVersion { get; init; } = 1;

    /// <summary>The VM's unique name in its store.</summary>
    public required string Name { get; init; }

    /// <summary>A stable identifier that survives renames of the store folder.</summary>
    public Guid Id { get; init; } = Guid.NewGuid();

    /// <summary>Which driver runs the VM.</summary>
    public VmDriverKind Driver { get; init; } = VmDriverKind.Qemu;

    /// <summary>Name of the image the VM was made from.</summary>
    public required string Image { get; init; }

    /// <summary>Content digest (sha256:…) of the image when the VM was made.</summary>
    public required string ImageDigest { get; init; }

    /// <summary>Number of virtual CPUs.</summary>
    public int CpuCount { get; init; } = 1;

    /// <summary>Guest memory in MiB.</summary>
    public int MemoryMB { get; init; } = 256;

    /// <summary>The accelerator asked for; the host resolves <see cref="VmAccelerator.Auto"/>.</summary>
    public VmAccelerator Accelerator { get; init; } = VmAccelerator.Auto;

    /// <summary>Seconds the guest has to show a sign of life (console output or an agent answer).</summary>
    public int BootTimeoutSeconds { get; init; } = 60;

    /// <summary>Extra kernel command-line words appended to the image's command line.</summary>
    public string? ExtraKernelArguments { get; init; }

    /// <summary>When the VM was made (UTC).</summary>
    public DateTimeOffset CreatedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>Boot resources, resolved from the image at creation so the VM does not depend on image metadata later.</summary>
    public required BootSpec Boot { get; init; }

    /// <summary>The snapshot the VM's disk is built on, if it was restored from one.</summary>
    public string? Snapshot { get; init; }

    /// <summary>A machine state to load at the next start instead of booting; cleared once used.</summary>
    public RestoreSpec? Restore { get; init; }

    /// <summary>A host folder shared with the guest over VirtioFS (Apple driver), or null.</summary>
    public string? SharedDirectory { get; init; }

    /// <summary>
    /// The loopback TCP port of the VM's screenshot endpoint: null for none (the default), 0 for a free
    /// port chosen at each start (the chosen one is in <see cref="VmStatus.ScreenshotPort"/>).
    /// </summary>
    public int? ScreenshotPort { get; init; }

    /// <summary>Where the NIC is plugged in when the VM starts (null: unplugged); Connect-MacVmNetwork changes it.</summary>
    public NetworkAttachment? Network { get; init; }

    /// <summary>The NIC's MAC address (locally administered), fixed when the VM is made.</summary>
    public string? MacAddress { get; init; }
}

/// <summary>What to boot: absolute paths into the store, resolved when the VM was made.</summary>
public sealed record BootSpec
{
    /// <summary>Kernel (uncompressed ELF or bzImage), for kernel images.</summary>
    public string? KernelPath { get; init; }

    /// <summary>Initramfs, for kernel images.</summary>
    public string? InitrdPath { get; init; }

    /// <summary>Kernel command line from the image.</summary>
    public string? KernelCommandLine { get; init; }

    /// <summary>The VM's own disk file name inside its folder (a copy-on-write clone of the image's disk), or null for none.</summary>
    public string? DiskFile { get; init; }

    /// <summary>Whether the image runs the MacVm guest agent.</summary>
    public bool GuestAgent { get; init; }

    /// <summary>The text the guest prints on its serial console once it is up, if the image declares one.</summary>
    public string? ReadyMarker { get; init; }

    /// <summary>For macOS guests (Apple driver): the Mac platform's identity files; null for Linux guests.</summary>
    public MacPlatformSpec? MacPlatform { get; init; }
}

/// <summary>What a macOS guest's VZMacPlatformConfiguration is made from.</summary>
public sealed record MacPlatformSpec
{
    /// <summary>The VZMacHardwareModel's data representation (a file of the image).</summary>
    public required string HardwareModelPath { get; init; }

    /// <summary>The VZMacMachineIdentifier's data representation (a file of the image: the guest's ECID).</summary>
    public required string MachineIdentifierPath { get; init; }

    /// <summary>The VM's own copy of the auxiliary storage (NVRAM) inside its folder: the guest writes it.</summary>
    public required string AuxiliaryStorageFile { get; init; }
}

/// <summary>
/// Every document the module writes: indented, camelCase, enums as strings, from code generated at build
/// time for each model type (no reflection: the host is compiled ahead of time, and reads its manifest on
/// a restore's critical path).
/// </summary>
public static class ModelJson
{
    /// <summary>Serialises a model object.</summary>
    public static string Serialize<T>(T value) => System.Text.Json.JsonSerializer.Serialize(value, TypeInfo<T>());

    /// <summary>Deserialises a model object; throws <see cref="InvalidDataException"/> when the text is not one.</summary>
    public static T Deserialize<T>(string json, string what)
    {
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize(json, TypeInfo<T>())
                ?? throw new InvalidDataException($"{what} is empty.");
        }
        catch (System.Text.Json.JsonException ex)
        {
            throw new InvalidDataException($"{what} is not valid: {ex.Message}", ex);
        }
    }

    private static System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> TypeInfo<T>() =>
        (System.Text.Json.Serialization.Metadata.JsonTypeInfo<T>)ModelJsonContext.Default.GetTypeInfo(typeof(T))!;
}

/// <summary>Serialisation code generated at build time for the documents the module writes.</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UseStringEnumConverter = true)]
[JsonSerializable(typeof(VmConfiguration))]
[JsonSerializable(typeof(VmStatus))]
[JsonSerializable(typeof(MacVmSnapshot))]
[JsonSerializable(typeof(MacVmImage))]
internal sealed partial class ModelJsonContext : JsonSerializerContext
{
}
