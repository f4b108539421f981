using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Runs a shell script in the guests of VMs through the guest agent and returns its exit code and output.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "MacVmGuestCommand", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVmGuestCommandResult))]
public sealed class InvokeMacVmGuestCommand : VmTargetCmdlet
{
    /// <summary>The script, run by the guest's sh (working folder /, no input).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string ScriptText { get; set; } = "";

    /// <summary>Seconds the script may take.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 30;

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, "Run a script in the guest")) return;
        var result = RunEngine((_, ct) => Vms.RunInGuestAsync(name, ScriptText, TimeSpan.FromSeconds(TimeoutSec), ct));
        WriteObject(new MacVmGuestCommandResult(name, result.ExitCode, result.Output));
    }
}
