using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Deletes VMs and their disks. Refuses a running VM unless -Force.</summary>
[Cmdlet(VerbsCommon.Remove, "MacVm", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByName)]
[OutputType(typeof(void))]
public sealed class RemoveMacVmCommand : VmTargetCmdlet
{
    /// <summary>Kill a running VM and remove it, without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcessUnlessForced(Force, name, "Remove VM and its disk")) return;
        RunEngine((r, ct) => Vms.RemoveAsync(name, Force, r, ct));
    }
}
