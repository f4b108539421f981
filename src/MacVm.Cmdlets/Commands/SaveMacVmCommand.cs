using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Saves running VMs as named snapshots (machine state plus the disk layer that belongs to it), then resumes or stops them.</summary>
[Cmdlet(VerbsData.Save, "MacVm", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVmSnapshot))]
public sealed class SaveMacVmCommand : VmTargetCmdlet
{
    /// <summary>The snapshot's name (default: the VM's name and the UTC time). With several VMs, each gets its own name by default.</summary>
    [Parameter]
    public string? SnapshotName { get; set; }

    /// <summary>Stop the VM after saving it instead of resuming it.</summary>
    [Parameter]
    public SwitchParameter Stop { get; set; }

    /// <summary>Return the snapshot.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        var snapshotName = SnapshotName;
        if (!ShouldProcess(name, $"Save VM as snapshot '{snapshotName ?? "(generated name)"}'{(Stop ? " and stop it" : "")}")) return;
        var snapshot = RunEngine((r, ct) => Snapshots.SaveAsync(name, snapshotName, Stop, r, ct));
        if (PassThru) WriteObject(snapshot);
    }
}
