using MacVm.Engine.Drivers.Apple;
using MacVm.Engine.Drivers.Qemu;
using MacVm.Engine.Operations;

namespace MacVm.Engine.Drivers;

/// <summary>Finds the driver for a <see cref="VmDriverKind"/>.</summary>
public static class DriverRegistry
{
    /// <summary>The driver a VM gets when none is named: Apple on macOS, QEMU elsewhere.</summary>
    public static VmDriverKind DefaultKind => VmDriverKind.Qemu;

    /// <summary>Returns the driver, or throws NotInstalled when it cannot run on this machine.</summary>
    public static IVmDriver Get(VmDriverKind kind) => kind switch
    {
        VmDriverKind.Qemu => QemuDriver.Instance,
        // On Linux only a fake framework named by $MACVM_VZ_FRAMEWORK (tests) makes the Apple driver usable.
        VmDriverKind.Apple => AppleDriver.IsConfigured ? AppleDriver.Instance : throw new MacVmException(MacVmErrorKind.NotInstalled, "DriverUnavailable",
            "The Apple driver needs macOS (Virtualization.framework). On this OS use -Driver Qemu."),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}
