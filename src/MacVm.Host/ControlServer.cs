using System.Net.Sockets;
using MacVm.Engine.HostProtocol;
using StreamJsonRpc;

namespace MacVm.Host;

/// <summary>
/// The VM's control socket: a unix stream socket, mode 0600 in a 0700 folder, where each
/// connection is a JSON-RPC session (newline-delimited) bound to <see cref="HostControlService"/>.
/// </summary>
internal sealed class ControlServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly HostControlService _service;
    private readonly HostLog _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly string _path;
    private Task? _accepting;

    public ControlServer(string path, HostControlService service, HostLog log)
    {
        _path = path;
        _service = service;
        _log = log;
        File.Delete(path);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    /// <summary>Starts accepting connections.</summary>
    public void Start()
    {
        _listener.Listen(16);
        _accepting = Task.Run(AcceptLoopAsync);
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("AOT", "IL3050",
        Justification = "HostControlService's methods take and return only types with generated JSON code; StreamJsonRpc finds them by reflection, which NativeAOT keeps for the target type's public methods.")]
    private async Task ServeAsync(Socket client)
    {
        try
        {
            using var stream = new NetworkStream(client, ownsSocket: true);
            using var rpc = new JsonRpc(new NewLineDelimitedMessageHandler(stream, stream, HostRpc.CreateFormatter()));
            rpc.AddLocalRpcTarget(_service, new JsonRpcTargetOptions { AllowNonPublicInvocation = false });
            rpc.StartListening();
            await rpc.Completion.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _log.Write($"Control connection ended with an error: {ex.Message}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Dispose();
        if (_accepting is not null) await _accepting.ConfigureAwait(false);
        File.Delete(_path);
        _stop.Dispose();
    }
}
