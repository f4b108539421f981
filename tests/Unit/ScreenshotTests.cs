using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using MacVm.Engine.Drivers;
using MacVm.Engine.HostProtocol;
using MacVm.Engine.Operations;
using MacVm.Engine.Screenshots;
using MacVm.Host;
using SkiaSharp;
using Xunit;

namespace MacVm.Tests.Unit;

public class ScreenshotSettingsTests
{
    [Theory]
    [InlineData(1280, 800, false, 800, 500)]
    [InlineData(1920, 1200, false, 800, 500)]
    [InlineData(1366, 768, false, 800, 450)] // 449.8 rounds to 450
    [InlineData(1024, 768, false, 800, 600)]
    [InlineData(640, 480, false, 640, 480)]  // a thumbnail never enlarges
    [InlineData(1280, 800, true, 1280, 800)]
    [InlineData(4000, 1, false, 800, 1)]     // never 0 rows
    public void ThumbnailsAre800WideWithTheDisplaysAspectRatioAndFullIsTheDisplaysSize(int w, int h, bool full, int ew, int eh)
    {
        Assert.Equal((ew, eh), ScreenshotSettings.TargetSize(w, h, full));
    }

    [Fact]
    public void AnEmptyDisplayIsAnError()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ScreenshotSettings.TargetSize(0, 800, false));
    }

    [Fact]
    public void QualityDefaultsAre60ForAThumbnailAnd85ForFull()
    {
        Assert.Equal(60, ScreenshotSettings.ResolveQuality(false, null));
        Assert.Equal(85, ScreenshotSettings.ResolveQuality(true, null));
        Assert.Equal(1, ScreenshotSettings.ResolveQuality(true, 1));
        Assert.Equal(100, ScreenshotSettings.ResolveQuality(false, 100));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(101)]
    [InlineData(-5)]
    public void QualityOutOfRangeNamesTheValueAndTheRange(int quality)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ScreenshotSettings.ResolveQuality(false, quality));
        Assert.Contains($"Quality {quality}", ex.Message);
        Assert.Contains("1 to 100", ex.Message);
    }
}

public class ImageHeaderTests
{
    [Fact]
    public void ReadsThePngSizeFromIhdr()
    {
        byte[] png = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R', 0, 0, 5, 0, 0, 0, 3, 32, 8, 2];
        Assert.Equal((ScreenshotFormat.Png, 1280, 800), ImageHeader.Read(png));
    }

    [Fact]
    public void ReadsTheJpegSizeFromTheFrameHeaderAfterOtherSegments()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(321, 123, SKColorType.Bgra8888, SKAlphaType.Opaque));
        bitmap.Erase(SKColors.Teal);
        using var jpeg = SKImage.FromBitmap(bitmap).Encode(SKEncodedImageFormat.Jpeg, 70);
        Assert.Equal((ScreenshotFormat.Jpeg, 321, 123), ImageHeader.Read(jpeg.ToArray()));
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0x89, 0x50, 0x4E, 0x47 })]
    [InlineData(new byte[] { 0xFF, 0xD8, 0xFF, 0xD9 })]
    [InlineData(new byte[] { (byte)'G', (byte)'I', (byte)'F', (byte)'8', (byte)'9', (byte)'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    public void AnythingElseIsNull(byte[] data)
    {
        Assert.Null(ImageHeader.Read(data));
    }
}

public class ScreenshotTokenTests
{
    [Fact]
    public void TokensAre32RandomBytesInBase64Url()
    {
        var a = ScreenshotToken.New();
        var b = ScreenshotToken.New();
        Assert.NotEqual(a, b);
        Assert.Equal(43, a.Length); // 32 bytes, unpadded
        Assert.Matches("^[A-Za-z0-9_-]+$", a);
    }

    [Theory]
    [InlineData("Bearer abc", null, "abc")]
    [InlineData("bearer abc ", "xyz", "abc")]  // the header wins
    [InlineData(null, "xyz", "xyz")]
    [InlineData("Basic dXNlcjpwYXNz", null, null)]
    [InlineData(null, "", null)]
    [InlineData(null, null, null)]
    public void ATokenComesFromTheBearerHeaderOrTheQuery(string? header, string? query, string? expected)
    {
        Assert.Equal(expected, ScreenshotToken.Presented(header, query));
    }

    [Fact]
    public void OnlyTheExactTokenMatches()
    {
        var token = ScreenshotToken.New();
        Assert.True(ScreenshotToken.Matches(token, token));
        Assert.False(ScreenshotToken.Matches(token, null));
        Assert.False(ScreenshotToken.Matches(token, ""));
        Assert.False(ScreenshotToken.Matches(token, token[..^1]));
        Assert.False(ScreenshotToken.Matches(token, token + "x"));
        Assert.False(ScreenshotToken.Matches("abcDEF", "abcdef"));
        Assert.False(ScreenshotToken.Matches("", ""));
    }
}

public class ScreenshotEndpointTests
{
    private const string Token = "s3cret-token";

    [Theory]
    [InlineData("GET", "/screenshot", null, null, null, 401)]
    [InlineData("GET", "/screenshot", null, "Bearer wrong", null, 401)]
    [InlineData("GET", "/screenshot", null, null, "wrong", 401)]
    [InlineData("GET", "/other", null, null, null, 401)] // no token: not even a 404
    [InlineData("GET", "/other", null, "Bearer " + Token, null, 404)]
    [InlineData("POST", "/screenshot", null, "Bearer " + Token, null, 405)]
    [InlineData("GET", "/screenshot", null, "Bearer " + Token, null, 200)]
    [InlineData("GET", "/screenshot", "1", null, Token, 200)]
    public void RequestsAreDecidedTokenFirst(string method, string path, string? full, string? header, string? query, int status)
    {
        Assert.Equal(status, ScreenshotEndpoint.Decide(method, path, full, header, query, Token).Status);
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("0", false)]
    [InlineData("1", true)]
    [InlineData("true", true)]
    public void FullIsAskedForWithFull1(string? full, bool expected)
    {
        Assert.Equal(expected, ScreenshotEndpoint.Decide("GET", "/screenshot", full, "Bearer " + Token, null, Token).Full);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(65536)]
    public void PortsOutsideTcpAreRefused(int port)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ScreenshotEndpoint.ValidatePort(port));
        Assert.Contains($"ScreenshotPort {port}", ex.Message);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(0)]
    [InlineData(65535)]
    public void NoPortAFreePortAndAnyTcpPortAreAccepted(int? port)
    {
        ScreenshotEndpoint.ValidatePort(port);
    }

    [Fact]
    public void APortInUseIsAPortInUseErrorNamingThePort()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var ex = Assert.Throws<MacVmException>(() => ScreenshotEndpoint.CheckPortFree(port, "web1"));
        Assert.Equal("PortInUse", ex.Problem);
        Assert.Contains($"Port {port}", ex.Message);
        Assert.Contains("-ScreenshotPort", ex.Message);
        taken.Stop();
        ScreenshotEndpoint.CheckPortFree(port, "web1");
        ScreenshotEndpoint.CheckPortFree(0, "web1");
    }
}

public class ScreenshotEncoderTests
{
    /// <summary>A display like the test guest's: black with a blue bar and some light grey "text".</summary>
    private static byte[] DisplayPng(int width = 1280, int height = 800)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Bgra8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.Black);
            using var blue = new SKPaint { Color = new SKColor(0, 0, 170) };
            canvas.DrawRect(32, 32, 160, 16, blue);
            using var grey = new SKPaint { Color = new SKColor(170, 170, 170) };
            for (var x = 32; x < 400; x += 9) canvas.DrawRect(x, 64, 5, 12, grey);
        }
        using var png = SKImage.FromBitmap(bitmap).Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    private static ScreenCapture PngCapture(int width = 1280, int height = 800) => new(width, height, ScreenCaptureFormat.Png, DisplayPng(width, height));

    [Fact]
    public void AThumbnailIsAJpeg800WideThatStillShowsTheDisplay()
    {
        var (data, w, h) = ScreenshotEncoder.Encode(PngCapture(), full: false, ScreenshotFormat.Jpeg, 60);
        Assert.Equal((800, 500), (w, h));
        Assert.Equal((ScreenshotFormat.Jpeg, 800, 500), ImageHeader.Read(data));
        using var decoded = SKBitmap.Decode(data);
        Assert.Equal(800, decoded.Width);
        // The blue bar at (32..192, 32..48) lands at (20..120, 20..30) in the thumbnail.
        var bar = decoded.GetPixel(70, 25);
        Assert.True(bar.Blue > 120 && bar.Red < 60, $"expected the blue bar, got {bar}");
        var background = decoded.GetPixel(600, 400);
        Assert.True(background.Red < 20 && background.Green < 20 && background.Blue < 20, $"expected black, got {background}");
    }

    [Fact]
    public void FullPngIsQemusOwnPngUntouched()
    {
        var capture = PngCapture();
        var (data, w, h) = ScreenshotEncoder.Encode(capture, full: true, ScreenshotFormat.Png, 85);
        Assert.Same(capture.Data, data);
        Assert.Equal((1280, 800), (w, h));
    }

    [Fact]
    public void FullJpegHasTheDisplaysSizeAndQualityChangesItsSize()
    {
        var capture = PngCapture();
        var (good, w, h) = ScreenshotEncoder.Encode(capture, full: true, ScreenshotFormat.Jpeg, 95);
        var (poor, _, _) = ScreenshotEncoder.Encode(capture, full: true, ScreenshotFormat.Jpeg, 5);
        Assert.Equal((1280, 800), (w, h));
        Assert.Equal((ScreenshotFormat.Jpeg, 1280, 800), ImageHeader.Read(good));
        Assert.True(poor.Length < good.Length, $"quality 5 ({poor.Length} bytes) should be smaller than 95 ({good.Length})");
    }

    [Fact]
    public void RawBgraCapturesOfTheAppleDriverEncodeWithTheirColoursInPlace()
    {
        // 4x2 pixels, blue-green-red-alpha: top row pure blue, bottom row pure red; alpha 0 must not matter.
        var pixels = new byte[4 * 2 * 4];
        for (var i = 0; i < 4; i++) { pixels[i * 4] = 255; }
        for (var i = 4; i < 8; i++) { pixels[i * 4 + 2] = 255; }
        var capture = new ScreenCapture(4, 2, ScreenCaptureFormat.Bgra32, pixels);
        var (png, w, h) = ScreenshotEncoder.Encode(capture, full: true, ScreenshotFormat.Png, 85);
        Assert.Equal((4, 2), (w, h));
        using var decoded = SKBitmap.Decode(png);
        Assert.Equal(new SKColor(0, 0, 255), decoded.GetPixel(1, 0));
        Assert.Equal(new SKColor(255, 0, 0), decoded.GetPixel(2, 1));
    }

    [Fact]
    public void ARawCaptureOfTheWrongLengthIsAClearError()
    {
        var capture = new ScreenCapture(4, 2, ScreenCaptureFormat.Bgra32, new byte[31]);
        var ex = Assert.Throws<InvalidDataException>(() => ScreenshotEncoder.Encode(capture, true, ScreenshotFormat.Png, 85));
        Assert.Contains("needs 32 bytes", ex.Message);
    }

    [Fact]
    public void AnUnreadableCaptureIsAClearError()
    {
        var capture = new ScreenCapture(4, 2, ScreenCaptureFormat.Png, [1, 2, 3]);
        Assert.Throws<InvalidDataException>(() => ScreenshotEncoder.Encode(capture, false, ScreenshotFormat.Jpeg, 60));
    }
}

public class ScreenshotModelTests
{
    [Fact]
    public void TheScreenshotPortIsPartOfTheSavedConfiguration()
    {
        var config = new VmConfiguration { Name = "web1", Image = "tiny", ImageDigest = "sha256:x", Boot = new BootSpec(), ScreenshotPort = 0 };
        var back = ModelJson.Deserialize<VmConfiguration>(ModelJson.Serialize(config), "test");
        Assert.Equal(0, back.ScreenshotPort);
        Assert.Null(ModelJson.Deserialize<VmConfiguration>(ModelJson.Serialize(config with { ScreenshotPort = null }), "test").ScreenshotPort);
    }

    [Fact]
    public void TheEndpointIsShownOnlyWhileTheVmRuns()
    {
        var config = new VmConfiguration { Name = "web1", Image = "tiny", ImageDigest = "sha256:x", Boot = new BootSpec(), ScreenshotPort = 0 };
        var running = new MacVm(config, new VmStatus { State = VmState.Running, ScreenshotPort = 41234 }, "/s/vms/web1");
        Assert.Equal("http://127.0.0.1:41234/screenshot", running.ScreenshotUrl);
        var stopped = new MacVm(config, new VmStatus { State = VmState.Stopped, ScreenshotPort = 41234 }, "/s/vms/web1");
        Assert.Null(stopped.ScreenshotPort);
        Assert.Null(stopped.ScreenshotUrl);
    }

    [Fact]
    public void ScreenshotsCarryTheirBytesThroughTheHostProtocolsJson()
    {
        var options = HostRpc.CreateFormatter().JsonSerializerOptions;
        var result = new MacVmScreenshot { VMName = "web1", Width = 800, Height = 500, Format = ScreenshotFormat.Jpeg, Quality = 60, Data = [0xFF, 0xD8, 0xFF] };
        var json = System.Text.Json.JsonSerializer.Serialize(result, options);
        Assert.Contains("\"format\":\"Jpeg\"", json);
        var back = System.Text.Json.JsonSerializer.Deserialize<MacVmScreenshot>(json, options)!;
        Assert.Equal(result.Data, back.Data);
        Assert.Equal(800, back.Width);
    }
}

/// <summary>The host's HTTP endpoint on a real loopback socket, with a stand-in for the capture.</summary>
public class ScreenshotServerTests
{
    private static readonly byte[] Jpeg = [0xFF, 0xD8, 0xFF, 0xD9];

    private static async Task<(int Status, string? Type, byte[] Body, HttpResponseMessage Response)> GetAsync(int port, string pathAndQuery, string? bearer = null, HttpMethod? method = null)
    {
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false });
        using var request = new HttpRequestMessage(method ?? HttpMethod.Get, $"http://127.0.0.1:{port}{pathAndQuery}");
        if (bearer is not null) request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        var response = await client.SendAsync(request);
        return ((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsByteArrayAsync(), response);
    }

    [Fact]
    public async Task ItServesThePictureOnlyToTheTokenAndPassesFullThrough()
    {
        var token = ScreenshotToken.New();
        var asked = new List<bool>();
        await using var server = ScreenshotServer.Start(0, "web1", token,
            (full, _) => { lock (asked) asked.Add(full); return Task.FromResult(new MacVmScreenshot { VMName = "web1", Format = ScreenshotFormat.Jpeg, Data = Jpeg }); },
            () => null, new HostLog());
        Assert.InRange(server.Port, 1, 65535);

        var anonymous = await GetAsync(server.Port, "/screenshot");
        Assert.Equal(401, anonymous.Status);
        Assert.Contains("Bearer", anonymous.Response.Headers.WwwAuthenticate.ToString());
        Assert.Equal(401, (await GetAsync(server.Port, "/screenshot", bearer: "wrong")).Status);
        Assert.Equal(401, (await GetAsync(server.Port, "/screenshot?token=wrong")).Status);
        Assert.Empty(asked); // nothing was captured for them

        var thumb = await GetAsync(server.Port, "/screenshot", bearer: token);
        Assert.Equal((200, "image/jpeg"), (thumb.Status, thumb.Type));
        Assert.Equal(Jpeg, thumb.Body);
        var full = await GetAsync(server.Port, $"/screenshot?full=1&token={token}");
        Assert.Equal(200, full.Status);
        Assert.Equal([false, true], asked);

        Assert.Equal(404, (await GetAsync(server.Port, "/", bearer: token)).Status);
        Assert.Equal(405, (await GetAsync(server.Port, "/screenshot", bearer: token, method: HttpMethod.Post)).Status);
    }

    [Fact]
    public async Task AFailedCaptureOrNoDisplayIs503WithTheReason()
    {
        var token = ScreenshotToken.New();
        string? unavailable = null;
        await using var server = ScreenshotServer.Start(0, "web1", token,
            (_, _) => throw new IOException("QEMU refused 'screendump': no surface"),
            () => unavailable, new HostLog());
        var failed = await GetAsync(server.Port, "/screenshot", bearer: token);
        Assert.Equal(503, failed.Status);
        Assert.Contains("no surface", System.Text.Encoding.UTF8.GetString(failed.Body));
        unavailable = "VM 'web1' is Stopping: there is no display to capture.";
        var stopping = await GetAsync(server.Port, "/screenshot", bearer: token);
        Assert.Equal(503, stopping.Status);
        Assert.Contains("Stopping", System.Text.Encoding.UTF8.GetString(stopping.Body));
    }

    [Fact]
    public async Task ItListensOnLoopbackOnlyAndAFixedPortInUseIsAPortInUseError()
    {
        await using var server = ScreenshotServer.Start(0, "web1", "t", (_, _) => Task.FromResult(new MacVmScreenshot { VMName = "web1" }), () => null, new HostLog());
        var listening = System.Net.NetworkInformation.IPGlobalProperties.GetIPGlobalProperties().GetActiveTcpListeners()
            .Where(e => e.Port == server.Port).ToList();
        Assert.NotEmpty(listening);
        Assert.All(listening, e => Assert.Equal(IPAddress.Loopback, e.Address));

        var ex = Assert.Throws<MacVmException>(() => ScreenshotServer.Start(server.Port, "web2", "t", (_, _) => Task.FromResult(new MacVmScreenshot { VMName = "web1" }), () => null, new HostLog()));
        Assert.Equal("PortInUse", ex.Problem);
        Assert.Contains($"Port {server.Port}", ex.Message);
    }
}
