using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

/// <summary>Unplugs VMs' network cables: the NIC stays, the guest sees no carrier.</summary>
[Cmdlet(VerbsCommunications.Disconnect, "MacVmNetwork", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class DisconnectMacVmNetworkCommand : VmTargetCmdlet
{
    /// <summary>Return the VM.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, "Unplug the network cable")) return;
        var vm = RunEngine((_, ct) => Vms.SetNetworkAsync(name, NetworkAttachment.None, ct));
        if (PassThru) WriteObject(vm);
    }
}
