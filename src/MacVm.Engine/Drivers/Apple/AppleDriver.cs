using MacVm.Engine.Drivers.Apple.Interop;
using MacVm.Engine.Operations;
using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Apple;

/// <summary>
/// The Apple driver: macOS and Linux guests on Virtualization.framework, in the host process, bound
/// through the Objective-C runtime's C API (no macOS workload). On Linux it runs only against the fake
/// framework named by $MACVM_VZ_FRAMEWORK (tests).
/// </summary>
public sealed class AppleDriver : IVmDriver
{
    /// <summary>The one instance.</summary>
    public static readonly AppleDriver Instance = new();

    private static readonly Selector s_isSupported = new("isSupported");

    private AppleDriver() { }

    /// <summary>True when this machine has a framework to bind: macOS, or a fake named by $MACVM_VZ_FRAMEWORK.</summary>
    public static bool IsConfigured => AppleFramework.ConfiguredPath() is not null;

    /// <inheritdoc/>
    public VmDriverKind Kind => VmDriverKind.Apple;

    /// <inheritdoc/>
    public void CheckAvailable(VmAccelerator accelerator)
    {
        if (accelerator is not (VmAccelerator.Auto or VmAccelerator.Hvf))
            throw new MacVmException(MacVmErrorKind.NotInstalled, "AcceleratorUnavailable",
                $"The Apple driver always runs on Hypervisor.framework: -Accelerator {accelerator} is not possible. Use -Accelerator Auto or Hvf.");
        AppleFramework.EnsureLoaded();
        using var pool = NS.Pool();
        if (!Msg.Bool(ObjC.GetClass("VZVirtualMachine"), s_isSupported))
            throw new MacVmException(MacVmErrorKind.NotInstalled, "DriverUnavailable",
                "Virtualization.framework says this machine cannot run VMs (VZVirtualMachine isSupported is NO): it needs a Mac with hardware virtualization, not a VM without nested virtualization.");
    }

    /// <inheritdoc/>
    public Task CloneDiskAsync(string source, string sourceFormat, string target, CancellationToken ct)
    {
        // The framework reads raw disk images only (the format is read from the file: a snapshot's disk
        // keeps its name whatever the driver); a clone is an APFS copy-on-write clone (O(1)).
        if (IsQcow2(source))
            throw new MacVmException(MacVmErrorKind.InvalidState, "DiskFormatUnsupported",
                $"The disk '{source}' is qcow2; Virtualization.framework needs a raw disk image. Convert it (qemu-img convert -O raw) and import that.");
        return Task.Run(() => Libc.CloneFile(source, target), ct);
    }

    private static bool IsQcow2(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using var f = File.OpenRead(path);
        return f.Read(magic) == 4 && magic[0] == (byte)'Q' && magic[1] == (byte)'F' && magic[2] == (byte)'I' && magic[3] == 0xfb;
    }

    /// <inheritdoc/>
    public IVirtualMachine Create(VmConfiguration configuration, VmPaths paths, IVmEventSink events)
    {
        AppleFramework.EnsureLoaded();
        return new AppleVirtualMachine(configuration, paths, events, VmQueues.Create($"org.macvm.vm.{configuration.Name}"));
    }
}
