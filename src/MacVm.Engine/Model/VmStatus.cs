namespace MacVm;

/// <summary>
/// Live status of a VM. The host process returns it over its control socket and also writes it
/// to status.json on every change, so that the state of a VM whose host is gone is still known.
/// </summary>
public sealed record VmStatus
{
    /// <summary>The state.</summary>
    public VmState State { get; init; }

    /// <summary>Why the VM is in this state, when that needs saying (failures, watchdog, exit codes).</summary>
    public string? Reason { get; init; }

    /// <summary>The host process id.</summary>
    public int? HostProcessId { get; init; }

    /// <summary>The hypervisor child process id (QEMU).</summary>
    public int? HypervisorProcessId { get; init; }

    /// <summary>The accelerator actually in use (kvm, tcg, hvf).</summary>
    public string? Accelerator { get; init; }

    /// <summary>When the host started the hypervisor (UTC).</summary>
    public DateTimeOffset? StartedUtc { get; init; }

    /// <summary>Whether the guest has shown a sign of life (console output or an agent answer).</summary>
    public bool GuestBooted { get; init; }

    /// <summary>Whether the guest agent has answered.</summary>
    public bool GuestAgentReady { get; init; }

    /// <summary>The snapshot whose machine state this run was restored from, if any.</summary>
    public string? RestoredFrom { get; init; }

    /// <summary>Why a restore fell back to a cold boot, if it did.</summary>
    public string? RestoreFallbackReason { get; init; }

    /// <summary>The loopback port the screenshot endpoint listens on, while it does.</summary>
    public int? ScreenshotPort { get; init; }

    /// <summary>Where the NIC is plugged in now (null before the host has attached it).</summary>
    public NetworkAttachment? Network { get; init; }

    /// <summary>The IP configuration the host serves to the guest (null: the guest is told to wait).</summary>
    public GuestIpConfiguration? GuestIpServed { get; init; }

    /// <summary>The IP configuration the guest acknowledged having applied.</summary>
    public GuestIpConfiguration? GuestIp { get; init; }

    /// <summary>True when the guest acknowledged exactly what is served.</summary>
    public bool GuestIpAssigned => GuestIp is not null && GuestIp == GuestIpServed;

    /// <summary>When this status was written (UTC).</summary>
    public DateTimeOffset UpdatedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>True for states in which no host process should be running.</summary>
    public bool IsTerminal => State is VmState.Stopped or VmState.Failed;
}
