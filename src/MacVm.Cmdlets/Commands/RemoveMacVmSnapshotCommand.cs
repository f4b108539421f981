using System.Management.Automation;
using MacVm.Engine.Operations;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Deletes snapshots. Refused while a VM restored from the snapshot still uses its disk layer.</summary>
[Cmdlet(VerbsCommon.Remove, "MacVmSnapshot", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByName)]
[OutputType(typeof(void))]
public sealed class RemoveMacVmSnapshotCommand : MacVmCmdlet
{
    private const string ByName = "ByName";
    private const string ByObject = "ByObject";

    /// <summary>Names of snapshots; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByName, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(SnapshotNameCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    /// <summary>Snapshot objects, as Get-MacVmSnapshot returns them.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByObject, ValueFromPipeline = true)]
    public MacVmSnapshot[] Snapshot { get; set; } = Array.Empty<MacVmSnapshot>();

    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        IEnumerable<string> names;
        if (ParameterSetName == ByObject)
        {
            names = Snapshot.Select(s => s.Name);
        }
        else
        {
            var (found, missing) = Snapshots.Resolve(Name);
            WriteNotFound(missing, MacVmException.SnapshotNotFound);
            names = found;
        }
        foreach (var name in names)
        {
            if (!ShouldProcessUnlessForced(Force, name, "Remove snapshot")) continue;
            ForItem(name, () => Snapshots.Remove(name));
        }
    }
}
