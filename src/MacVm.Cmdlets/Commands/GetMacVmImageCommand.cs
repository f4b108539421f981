using System.Management.Automation;
using MacVm.Engine.Operations;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Gets the images in the store.</summary>
[Cmdlet(VerbsCommon.Get, "MacVmImage")]
[OutputType(typeof(MacVmImage))]
public sealed class GetMacVmImageCommand : MacVmCmdlet
{
    /// <summary>Names of images; wildcards allowed; all when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string[]? Name { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var (names, missing) = Images.Resolve(Name);
        WriteNotFound(missing, MacVmException.ImageNotFound);
        foreach (var name in names)
            ForItem(name, () => WriteObject(Images.Get(name)));
    }
}
