using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Stops VMs: asks each guest to shut down, and kills it after a timeout (or at once with -Force).</summary>
[Cmdlet(VerbsLifecycle.Stop, "MacVm", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class StopMacVmCommand : VmTargetCmdlet
{
    /// <summary>Kill the hypervisor at once (like pulling the plug); unsaved guest data is lost.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Seconds to wait for a graceful shutdown before killing.</summary>
    [Parameter]
    [ValidateRange(0, 3600)]
    public int TimeoutSec { get; set; } = 30;

    /// <summary>Return the stopped VM.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, Force ? "Stop VM (kill the hypervisor)" : "Stop VM")) return;
        var vm = RunEngine((r, ct) => Vms.StopAsync(name, Force, TimeSpan.FromSeconds(TimeoutSec), r, ct));
        if (PassThru) WriteObject(vm);
    }
}
