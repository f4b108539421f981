using System.Management.Automation;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Infrastructure;

/// <summary>
/// A cmdlet that acts on existing VMs, chosen by name (wildcards, pipeline by value or property)
/// or by object (-VM, pipeline). Names that match nothing are reported one by one and the others go on.
/// </summary>
public abstract class VmTargetCmdlet : MacVmCmdlet
{
    /// <summary>Parameter set: by name.</summary>
    protected const string ByName = "ByName";

    /// <summary>Parameter set: by object.</summary>
    protected const string ByObject = "ByObject";

    /// <summary>Names of VMs; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByName, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(VmNameCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    /// <summary>VM objects, as Get-MacVm returns them.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByObject, ValueFromPipeline = true)]
    [ValidateNotNull]
    public MacVm[] VM { get; set; } = Array.Empty<MacVm>();

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        IEnumerable<string> names;
        if (ParameterSetName == ByObject)
        {
            names = VM.Select(v => v.Name);
        }
        else
        {
            var (found, missing) = Vms.Resolve(Name);
            WriteNotFound(missing, MacVmException.VmNotFound);
            names = found;
        }
        foreach (var name in names)
        {
            ForItem(name, () => ProcessVm(name));
        }
    }

    /// <summary>Acts on one VM. Throw engine exceptions; the base turns them into errors.</summary>
    protected abstract void ProcessVm(string name);
}
