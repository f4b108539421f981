using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

/// <summary>Makes a VM from an image and boots it.</summary>
[Cmdlet(VerbsCommon.New, "MacVm", SupportsShouldProcess = true)]
[OutputType(typeof(MacVm))]
public sealed class NewMacVmCommand : MacVmCmdlet
{
    /// <summary>The new VM's name.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    public string Name { get; set; } = "";

    /// <summary>The image to make it from.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string Image { get; set; } = "";

    /// <summary>
    /// The hypervisor: Qemu (the default; Linux guests) or Apple (Virtualization.framework in the host
    /// process: macOS hosts only; needed for macOS images such as those imported with Import-MacVmImage -TartPath).
    /// </summary>
    [Parameter]
    public VmDriverKind Driver { get; set; } = VmDriverKind.Qemu;

    /// <summary>Virtual CPUs.</summary>
    [Parameter]
    [ValidateRange(1, VmManager.MaxCpuCount)]
    public int CpuCount { get; set; } = 1;

    /// <summary>Memory in MiB.</summary>
    [Parameter]
    [ValidateRange(VmManager.MinMemoryMB, VmManager.MaxMemoryMB)]
    public int MemoryMB { get; set; } = 256;

    /// <summary>The CPU accelerator.</summary>
    [Parameter]
    public VmAccelerator Accelerator { get; set; } = VmAccelerator.Auto;

    /// <summary>Seconds the guest has to show a sign of life before the boot watchdog fails the VM.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int BootTimeoutSec { get; set; } = 60;

    /// <summary>Words appended to the image's kernel command line.</summary>
    [Parameter]
    public string? KernelArguments { get; set; }

    /// <summary>Where the network card is plugged in: None (default), Nat, or the path of a test network's datagram socket.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(NetworkCompleter))]
    public string? Network { get; set; }

    /// <summary>With a socket -Network: the name the VM's client socket is derived from.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ClientId { get; set; }

    /// <summary>Make the VM without starting it.</summary>
    [Parameter]
    public SwitchParameter NoStart { get; set; }

    /// <summary>Serve screenshots over HTTP on this loopback port (0: a free port), guarded by the VM's token; off by default.</summary>
    [Parameter]
    [ValidateRange(0, Engine.Screenshots.ScreenshotEndpoint.MaxPort)]
    public int? ScreenshotPort { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var network = NetworkArguments.Check(this, () => NetworkArguments.Parse(this, Network, ClientId));
        if (!ShouldProcess(Name, $"Create VM from image '{Image}'{(NoStart ? "" : " and start it")}")) return;
        var request = new NewVmRequest
        {
            Name = Name,
            Image = Image,
            Driver = Driver,
            CpuCount = CpuCount,
            MemoryMB = MemoryMB,
            Accelerator = Accelerator,
            BootTimeoutSeconds = BootTimeoutSec,
            ExtraKernelArguments = KernelArguments,
            NoStart = NoStart,
            ScreenshotPort = ScreenshotPort,
            Network = network,
        };
        ForItem(Name, () => WriteObject(RunEngine((r, ct) => Vms.CreateAsync(request, r, ct))));
    }
}
