using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Pauses VMs' CPUs; memory and devices are kept.</summary>
[Cmdlet(VerbsLifecycle.Suspend, "MacVm", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class SuspendMacVmCommand : VmTargetCmdlet
{
    /// <summary>Return the paused VM.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, "Pause VM")) return;
        var vm = RunEngine((_, ct) => Vms.SuspendAsync(name, ct));
        if (PassThru) WriteObject(vm);
    }
}

/// <summary>Resumes paused VMs.</summary>
[Cmdlet(VerbsLifecycle.Resume, "MacVm", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class ResumeMacVmCommand : VmTargetCmdlet
{
    /// <summary>Return the resumed VM.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, "Resume VM")) return;
        var vm = RunEngine((_, ct) => Vms.ResumeAsync(name, ct));
        if (PassThru) WriteObject(vm);
    }
}
