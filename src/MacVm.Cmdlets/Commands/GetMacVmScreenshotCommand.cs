using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.HostProtocol;
using MacVm.Engine.Screenshots;

namespace MacVm.Cmdlets.Commands;

/// <summary>
/// Takes a screenshot of running or paused VMs: a JPEG thumbnail 800 px wide by default, the whole display
/// with -Full, PNG with -Format Png; returns it in memory or writes it to -Path.
/// </summary>
[Cmdlet(VerbsCommon.Get, "MacVmScreenshot", DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVmScreenshot))]
public sealed class GetMacVmScreenshotCommand : VmTargetCmdlet
{
    private readonly HashSet<string> _written = new(StringComparer.Ordinal);

    /// <summary>The whole display at its own size (JPEG quality 85) instead of an 800 px wide thumbnail (quality 60).</summary>
    [Parameter]
    public SwitchParameter Full { get; set; }

    /// <summary>Jpeg (default) or Png; with a -Path ending in .png and no -Format, Png.</summary>
    [Parameter]
    public ScreenshotFormat Format { get; set; } = ScreenshotFormat.Jpeg;

    /// <summary>JPEG quality 1–100 (default 60 for a thumbnail, 85 with -Full); PNG ignores it.</summary>
    [Parameter]
    [ValidateRange(ScreenshotSettings.MinQuality, ScreenshotSettings.MaxQuality)]
    public int Quality { get; set; }

    /// <summary>Write the picture to this file (replaced if it exists), or into this folder as &lt;VM name&gt;.jpg/.png.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Path { get; set; }

    private ScreenshotFormat _format;
    private string? _target;
    private bool _targetIsFolder;

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        _format = Format;
        if (Path is null) return;
        // Relative to the current location, through the provider, as every PowerShell path parameter.
        _target = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        _targetIsFolder = Directory.Exists(_target);
        if (!_targetIsFolder)
        {
            var folder = System.IO.Path.GetDirectoryName(_target);
            if (folder is not null && !Directory.Exists(folder))
                ThrowTerminatingError(new ErrorRecord(new DirectoryNotFoundException($"The folder '{folder}' of -Path '{Path}' does not exist. Create it first, or give another -Path."),
                    ErrorIdPrefix + "FolderNotFound", ErrorCategory.ObjectNotFound, Path));
            if (!MyInvocation.BoundParameters.ContainsKey(nameof(Format)) && _target.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
                _format = ScreenshotFormat.Png;
        }
    }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        string? file = null;
        if (_target is not null)
        {
            file = _targetIsFolder ? System.IO.Path.Combine(_target, name + ScreenshotSettings.Extension(_format)) : _target;
            // Several VMs into one file would keep only the last picture: say so instead.
            if (_written.Contains(file))
                throw new Engine.Operations.MacVmException(Engine.Operations.MacVmErrorKind.AlreadyExists, "PathReused",
                    $"The screenshot of VM '{name}' would replace the one just written to '{file}'. Give -Path a folder to get one file per VM.", name);
        }
        var request = new ScreenshotRequest
        {
            Full = Full,
            Format = _format,
            Quality = MyInvocation.BoundParameters.ContainsKey(nameof(Quality)) ? Quality : null,
        };
        var shot = RunEngine((_, ct) => Vms.ScreenshotAsync(name, request, file, ct));
        if (file is not null) _written.Add(file);
        WriteObject(shot);
    }
}
