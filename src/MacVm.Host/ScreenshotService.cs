using System.Diagnostics;
using MacVm;
using MacVm.Engine.HostProtocol;
using MacVm.Engine.Screenshots;

namespace MacVm.Host;

/// <summary>Takes screenshots for the control socket (Get-MacVmScreenshot) and the HTTP endpoint: one code path for both.</summary>
internal sealed class ScreenshotService
{
    private readonly VmHost _host;

    public ScreenshotService(VmHost host) => _host = host;

    /// <summary>Captures the display through the driver and encodes it as asked.</summary>
    public async Task<MacVmScreenshot> TakeAsync(ScreenshotRequest request, CancellationToken ct)
    {
        var quality = ScreenshotSettings.ResolveQuality(request.Full, request.Quality);
        var machine = _host.Machine ?? throw new InvalidOperationException("The VM has no running hypervisor.");
        var clock = Stopwatch.StartNew();
        var taken = DateTimeOffset.UtcNow;
        var capture = await machine.CaptureScreenAsync(ct).ConfigureAwait(false);
        var (data, width, height) = ScreenshotEncoder.Encode(capture, request.Full, request.Format, quality);
        return new MacVmScreenshot
        {
            VMName = _host.Config.Name,
            Full = request.Full,
            Width = width,
            Height = height,
            DisplayWidth = capture.Width,
            DisplayHeight = capture.Height,
            Format = request.Format,
            Quality = request.Format == ScreenshotFormat.Jpeg ? quality : null,
            TakenUtc = taken,
            DurationMs = clock.Elapsed.TotalMilliseconds,
            SizeBytes = data.Length,
            Data = data,
        };
    }
}
