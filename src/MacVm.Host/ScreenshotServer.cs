using System.Net;
using System.Net.Sockets;
using System.Text;
using MacVm;
using MacVm.Engine.HostProtocol;
using MacVm.Engine.Screenshots;

namespace MacVm.Host;

/// <summary>
/// The VM's screenshot endpoint, like the seed's dashboard server but guarded: HTTP on 127.0.0.1 only,
/// GET /screenshot (a JPEG thumbnail; ?full=1 for the whole display), and only for callers that present the
/// VM's token (<see cref="ScreenshotToken"/>). 401 without it, 503 when the capture fails.
/// </summary>
internal sealed class ScreenshotServer : IAsyncDisposable
{
    private readonly HttpListener _listener;
    private readonly string _token;
    private readonly Func<bool, CancellationToken, Task<MacVmScreenshot>> _take;
    private readonly Func<string?> _unavailable;
    private readonly HostLog _log;
    private readonly CancellationTokenSource _stop = new();
    private Task? _serving;

    private ScreenshotServer(HttpListener listener, int port, string token, Func<bool, CancellationToken, Task<MacVmScreenshot>> take, Func<string?> unavailable, HostLog log)
    {
        _listener = listener;
        Port = port;
        _token = token;
        _take = take;
        _unavailable = unavailable;
        _log = log;
    }

    /// <summary>The port it listens on.</summary>
    public int Port { get; }

    /// <summary>
    /// Listens on 127.0.0.1:<paramref name="port"/> (0: a free port). <paramref name="take"/> takes a picture
    /// (full or not); <paramref name="unavailable"/> says why there is none to take now (null when there is).
    /// </summary>
    public static ScreenshotServer Start(int port, string vmName, string token, Func<bool, CancellationToken, Task<MacVmScreenshot>> take, Func<string?> unavailable, HostLog log)
    {
        // HttpListener cannot bind port 0 itself: ask the kernel for a free port, then take it (retrying if
        // another process took it in between).
        for (var attempt = 1; ; attempt++)
        {
            var chosen = port == 0 ? FreeLoopbackPort() : port;
            var listener = new HttpListener { IgnoreWriteExceptions = true };
            listener.Prefixes.Add($"http://127.0.0.1:{chosen}/");
            try
            {
                listener.Start();
                var server = new ScreenshotServer(listener, chosen, token, take, unavailable, log);
                server._serving = Task.Run(server.ServeAsync);
                return server;
            }
            catch (Exception ex) when (ex is HttpListenerException or SocketException)
            {
                ((IDisposable)listener).Dispose();
                if (port != 0 || attempt >= 5) throw ScreenshotEndpoint.PortInUse(chosen, vmName, ex);
            }
        }
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            _ = Task.Run(() => AnswerAsync(context));
        }
    }

    private async Task AnswerAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        try
        {
            response.Headers["Cache-Control"] = "no-store";
            var decision = ScreenshotEndpoint.Decide(request.HttpMethod, request.Url?.AbsolutePath ?? "",
                request.QueryString["full"], request.Headers["Authorization"], request.QueryString[ScreenshotToken.QueryParameter], _token);
            if (decision.Status != 200)
            {
                if (decision.Status == 401) response.Headers["WWW-Authenticate"] = "Bearer";
                if (decision.Status == 405) response.Headers["Allow"] = "GET";
                await WriteTextAsync(response, decision.Status, decision.Message!).ConfigureAwait(false);
                return;
            }
            if (_unavailable() is { } why)
            {
                await WriteTextAsync(response, 503, why).ConfigureAwait(false);
                return;
            }
            MacVmScreenshot shot;
            try
            {
                shot = await _take(decision.Full, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
            {
                _log.Write($"Screenshot endpoint: capture failed: {ex.Message}");
                await WriteTextAsync(response, 503, $"The display could not be captured: {ex.Message}").ConfigureAwait(false);
                return;
            }
            response.StatusCode = 200;
            response.ContentType = ScreenshotSettings.MediaType(shot.Format);
            var data = shot.Data ?? [];
            response.ContentLength64 = data.Length;
            await response.OutputStream.WriteAsync(data, _stop.Token).ConfigureAwait(false);
            response.Close();
        }
        catch (Exception ex) when (ex is HttpListenerException or IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // The client went away, or we are shutting down.
            response.Abort();
        }
    }

    private static async Task WriteTextAsync(HttpListenerResponse response, int status, string text)
    {
        var body = Encoding.UTF8.GetBytes(text + "\n");
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        response.ContentLength64 = body.Length;
        await response.OutputStream.WriteAsync(body).ConfigureAwait(false);
        response.Close();
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        _listener.Close();
        if (_serving is not null) await _serving.ConfigureAwait(false);
        _stop.Dispose();
    }
}
