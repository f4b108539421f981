namespace MacVm;

/// <summary>
/// A VM as the pipeline sees it: its saved configuration plus the live state its host process
/// reported when the object was made. Objects are snapshots in time; Get-MacVm makes fresh ones.
/// </summary>
public sealed class MacVm
{
    /// <summary>Makes the pipeline object.</summary>
    public MacVm(VmConfiguration configuration, VmStatus status, string path)
    {
        Configuration = configuration;
        Status = status;
        Path = path;
    }

    /// <summary>The saved configuration.</summary>
    public VmConfiguration Configuration { get; }

    /// <summary>The live status.</summary>
    public VmStatus Status { get; }

    /// <summary>The VM's folder in the store.</summary>
    public string Path { get; }

    /// <summary>The VM's name.</summary>
    public string Name => Configuration.Name;

    /// <summary>The state reported by the host process (or derived from its absence).</summary>
    public VmState State => Status.State;

    /// <summary>Why the VM is <see cref="VmState.Failed"/> (or stopped), in words.</summary>
    public string? StateReason => Status.Reason;

    /// <summary>The driver.</summary>
    public VmDriverKind Driver => Configuration.Driver;

    /// <summary>The image the VM was made from.</summary>
    public string Image => Configuration.Image;

    /// <summary>Virtual CPUs.</summary>
    public int CpuCount => Configuration.CpuCount;

    /// <summary>Memory in MiB.</summary>
    public int MemoryMB => Configuration.MemoryMB;

    /// <summary>The accelerator in use (resolved), or the one asked for when not running.</summary>
    public string Accelerator => Status.Accelerator ?? Configuration.Accelerator.ToString();

    /// <summary>The host process id while one runs.</summary>
    public int? HostProcessId => Status.HostProcessId;

    /// <summary>The hypervisor process id while one runs (QEMU); null for in-process hypervisors.</summary>
    public int? HypervisorProcessId => Status.HypervisorProcessId;

    /// <summary>Whether the guest agent has answered since the VM started.</summary>
    public bool GuestAgentReady => Status.GuestAgentReady;

    /// <summary>Where the NIC is plugged in: live while the VM runs, else where it will be at the next start.</summary>
    public NetworkAttachment Network => Status.Network ?? Configuration.Network ?? NetworkAttachment.None;

    /// <summary>The NIC's MAC address.</summary>
    public string? MacAddress => Configuration.MacAddress;

    /// <summary>The IP configuration the guest acknowledged (Set-MacVmGuestIp), or null.</summary>
    public GuestIpConfiguration? GuestIp => Status.GuestIp;

    /// <summary>True when the guest applied and acknowledged the configuration the host serves.</summary>
    public bool GuestIpAssigned => Status.GuestIpAssigned;

    /// <summary>When the host started the VM (UTC).</summary>
    public DateTimeOffset? StartedUtc => Status.StartedUtc;

    /// <summary>How long the VM has been up.</summary>
    public TimeSpan? Uptime => Status.StartedUtc is { } s && State is VmState.Running or VmState.Paused ? DateTimeOffset.UtcNow - s : null;

    /// <summary>The loopback port of the screenshot endpoint while the VM runs with one (New-MacVm -ScreenshotPort).</summary>
    public int? ScreenshotPort => State is VmState.Running or VmState.Paused ? Status.ScreenshotPort : null;

    /// <summary>
    /// The screenshot endpoint's address while it serves (GET; add ?full=1 for the whole display). It needs the
    /// VM's token (the GetScreenshotToken() method) as "Authorization: Bearer &lt;token&gt;" or "?token=&lt;token&gt;".
    /// </summary>
    public string? ScreenshotUrl => ScreenshotPort is { } p ? $"http://127.0.0.1:{p}/screenshot" : null;

    /// <inheritdoc/>
    public override string ToString() => Name;
}

/// <summary>The answer of Test-MacVmGuest.</summary>
/// <param name="VMName">The VM.</param>
/// <param name="RoundTripMs">Host → guest agent → host, in milliseconds.</param>
/// <param name="Token">The token the agent echoed.</param>
public sealed record MacVmGuestPing(string VMName, double RoundTripMs, string Token);

/// <summary>The answer of Invoke-MacVmGuestCommand.</summary>
/// <param name="VMName">The VM.</param>
/// <param name="ExitCode">The script's exit status.</param>
/// <param name="Output">Its standard output and error.</param>
public sealed record MacVmGuestCommandResult(string VMName, int ExitCode, string Output);
