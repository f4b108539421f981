using System.Management.Automation;
using MacVm.Engine.Operations;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Deletes images. Refused while a VM is made from the image.</summary>
[Cmdlet(VerbsCommon.Remove, "MacVmImage", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = ByName)]
[OutputType(typeof(void))]
public sealed class RemoveMacVmImageCommand : MacVmCmdlet
{
    private const string ByName = "ByName";
    private const string ByObject = "ByObject";

    /// <summary>Names of images; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByName, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string[] Name { get; set; } = Array.Empty<string>();

    /// <summary>Image objects, as Get-MacVmImage returns them.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByObject, ValueFromPipeline = true)]
    public MacVmImage[] Image { get; set; } = Array.Empty<MacVmImage>();

    /// <summary>Do not ask for confirmation.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        IEnumerable<string> names;
        if (ParameterSetName == ByObject)
        {
            names = Image.Select(i => i.Name);
        }
        else
        {
            var (found, missing) = Images.Resolve(Name);
            WriteNotFound(missing, MacVmException.ImageNotFound);
            names = found;
        }
        foreach (var name in names)
        {
            if (!ShouldProcessUnlessForced(Force, name, "Remove image")) continue;
            ForItem(name, () => Images.Remove(name));
        }
    }
}
