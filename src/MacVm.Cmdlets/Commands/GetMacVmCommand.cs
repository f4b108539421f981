using System.Management.Automation;
using MacVm.Engine.Operations;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Gets VMs with their live state.</summary>
[Cmdlet(VerbsCommon.Get, "MacVm")]
[OutputType(typeof(MacVm))]
public sealed class GetMacVmCommand : MacVmCmdlet
{
    /// <summary>Names of VMs; wildcards allowed; all VMs when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(VmNameCompleter))]
    public string[]? Name { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var (names, missing) = Vms.Resolve(Name);
        WriteNotFound(missing, MacVmException.VmNotFound);
        foreach (var name in names)
            ForItem(name, () => WriteObject(RunEngine((_, ct) => Vms.GetAsync(name, ct))));
    }
}
