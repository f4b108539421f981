using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

/// <summary>Waits until VMs reach a state or a condition (the guest booted, the agent answers).</summary>
[Cmdlet(VerbsLifecycle.Wait, "MacVm", DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class WaitMacVmCommand : VmTargetCmdlet
{
    /// <summary>The state to wait for.</summary>
    [Parameter]
    public VmState? State { get; set; }

    /// <summary>The condition to wait for.</summary>
    [Parameter]
    public VmWaitCondition? Condition { get; set; }

    /// <summary>Seconds to wait before giving up with an error.</summary>
    [Parameter]
    [ValidateRange(1, 86400)]
    public int TimeoutSec { get; set; } = 120;

    /// <summary>Return the VM once it is there.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        if (State is null && Condition is null)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("Give -State, -Condition, or both."), "WaitMacVmNothingToWaitFor", ErrorCategory.InvalidArgument, null));
    }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        var vm = RunEngine((_, ct) => Vms.WaitAsync(name, State, Condition, TimeSpan.FromSeconds(TimeoutSec), ct));
        if (PassThru) WriteObject(vm);
    }
}
