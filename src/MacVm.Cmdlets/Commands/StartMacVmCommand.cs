using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Starts stopped or failed VMs and waits until each guest shows a sign of life.</summary>
[Cmdlet(VerbsLifecycle.Start, "MacVm", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class StartMacVmCommand : VmTargetCmdlet
{
    /// <summary>Return the started VM.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, "Start VM")) return;
        var vm = RunEngine((r, ct) => Vms.StartAsync(name, r, ct));
        if (PassThru) WriteObject(vm);
    }
}
