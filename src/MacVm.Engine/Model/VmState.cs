namespace MacVm;

/// <summary>The life-cycle state of a VM as its host process reports it.</summary>
public enum VmState
{
    /// <summary>No host process runs the VM; it was stopped on purpose or never started.</summary>
    Stopped,
    /// <summary>The host process is starting the hypervisor and the guest is booting.</summary>
    Starting,
    /// <summary>The hypervisor runs the guest.</summary>
    Running,
    /// <summary>The guest's CPUs are paused; memory is kept.</summary>
    Paused,
    /// <summary>A stop was asked for and the host is waiting for the guest to go down.</summary>
    Stopping,
    /// <summary>The VM died without being asked to (host or hypervisor crashed, boot watchdog fired).</summary>
    Failed,
}

/// <summary>Which hypervisor binding runs a VM.</summary>
public enum VmDriverKind
{
    /// <summary>QEMU (Linux guests; the driver used on Linux hosts).</summary>
    Qemu,
    /// <summary>Apple's Virtualization.framework (macOS hosts).</summary>
    Apple,
}

/// <summary>The CPU accelerator a VM asks for.</summary>
public enum VmAccelerator
{
    /// <summary>The best the host offers: HVF on macOS; on Linux KVM when usable, else TCG.</summary>
    Auto,
    /// <summary>QEMU's software emulation; slow but works everywhere.</summary>
    Tcg,
    /// <summary>Linux KVM.</summary>
    Kvm,
    /// <summary>macOS Hypervisor.framework.</summary>
    Hvf,
}

/// <summary>What an image holds.</summary>
public enum ImageKind
{
    /// <summary>A Linux kernel and initramfs, optionally with a data disk.</summary>
    KernelInitrd,
    /// <summary>A bootable disk image.</summary>
    Disk,
    /// <summary>A macOS guest (Apple driver): raw disk, auxiliary storage, hardware model and machine identifier.</summary>
    MacOS,
}
