using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

/// <summary>Copies a Linux kernel and initramfs (optionally with a data disk), a bootable disk, or a Tart macOS VM into the store as a named image.</summary>
[Cmdlet(VerbsData.Import, "MacVmImage", SupportsShouldProcess = true, DefaultParameterSetName = KernelSet)]
[OutputType(typeof(MacVmImage))]
public sealed class ImportMacVmImageCommand : MacVmCmdlet
{
    private const string KernelSet = "Kernel";
    private const string DiskSet = "Disk";
    private const string TartSet = "Tart";

    /// <summary>The image's name.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    public string Name { get; set; } = "";

    /// <summary>The Linux kernel (an uncompressed vmlinux boots fastest).</summary>
    [Parameter(Mandatory = true, ParameterSetName = KernelSet)]
    public string Kernel { get; set; } = "";

    /// <summary>The initramfs.</summary>
    [Parameter(ParameterSetName = KernelSet)]
    public string? Initrd { get; set; }

    /// <summary>The disk: the boot disk, or the data disk of a kernel image (qcow2 or raw).</summary>
    [Parameter(ParameterSetName = KernelSet)]
    [Parameter(Mandatory = true, ParameterSetName = DiskSet)]
    public string? Disk { get; set; }

    /// <summary>
    /// A macOS VM made by Tart: a VM folder (~/.tart/vms/&lt;name&gt;) or an entry of Tart's OCI cache
    /// (~/.tart/cache/OCIs/&lt;registry&gt;/&lt;repository&gt;/&lt;tag&gt;). Its disk.img, nvram.bin and the hardware model
    /// and machine identifier from its config.json become a macOS image for the Apple driver.
    /// </summary>
    [Parameter(Mandatory = true, ParameterSetName = TartSet)]
    public string? TartPath { get; set; }

    /// <summary>The kernel command line.</summary>
    [Parameter(ParameterSetName = KernelSet)]
    public string? KernelCommandLine { get; set; }

    /// <summary>The guest runs the MacVm guest agent (docs/guest-protocol.md).</summary>
    [Parameter]
    public SwitchParameter GuestAgent { get; set; }

    /// <summary>A line the guest prints on its serial console once it is up.</summary>
    [Parameter]
    public string? ReadyMarker { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Name, "Import image")) return;
        string? Resolve(string? path) => path is null ? null : SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);
        var request = new ImportImageRequest
        {
            Name = Name,
            KernelPath = ParameterSetName == KernelSet ? Resolve(Kernel) : null,
            InitrdPath = Resolve(Initrd),
            DiskPath = Resolve(Disk),
            KernelCommandLine = KernelCommandLine,
            TartPath = Resolve(TartPath),
            GuestAgent = GuestAgent,
            ReadyMarker = ReadyMarker,
        };
        ForItem(Name, () => WriteObject(RunEngine((r, ct) => Images.ImportAsync(request, r, ct))));
    }
}
