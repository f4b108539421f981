using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Gets the snapshots in the store.</summary>
[Cmdlet(VerbsCommon.Get, "MacVmSnapshot")]
[OutputType(typeof(MacVmSnapshot))]
public sealed class GetMacVmSnapshotCommand : MacVmCmdlet
{
    /// <summary>Names of snapshots; wildcards allowed; all when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(SnapshotNameCompleter))]
    public string[]? Name { get; set; }

    /// <summary>Only the snapshots saved from these VMs (names; wildcards allowed).</summary>
    [Parameter]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(VmNameCompleter))]
    public string[]? VM { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var (names, missing) = Snapshots.Resolve(Name);
        WriteNotFound(missing, Engine.Operations.MacVmException.SnapshotNotFound);
        var vmPatterns = VM?.Select(p => new WildcardPattern(p, WildcardOptions.IgnoreCase)).ToList();
        foreach (var name in names)
        {
            ForItem(name, () =>
            {
                var snapshot = Snapshots.Get(name);
                if (vmPatterns is null || vmPatterns.Any(p => p.IsMatch(snapshot.SourceVm))) WriteObject(snapshot);
            });
        }
    }
}
