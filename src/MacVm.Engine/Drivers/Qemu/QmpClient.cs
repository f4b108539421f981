using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// A client for QEMU's QMP. QMP is not JSON-RPC (its own envelope, asynchronous events between
/// replies) and no maintained .NET client exists, so this small one is ours: one reader loop,
/// one command in flight at a time, events handed to a callback.
/// </summary>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Action<string, JsonObject?> _onEvent;
    private readonly TaskCompletionSource<JsonObject> _greeting = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource<JsonObject>? _pending;
    private readonly Task _readLoop;

    private QmpClient(Socket socket, Action<string, JsonObject?> onEvent)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _onEvent = onEvent;
        _readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Completes when QEMU closes the QMP connection (normally: QEMU exited).</summary>
    public Task Closed => _readLoop;

    /// <summary>Connects (retrying while QEMU creates the socket), reads the greeting and enters command mode.</summary>
    public static async Task<QmpClient> ConnectAsync(string path, Action<string, JsonObject?> onEvent, TimeSpan timeout, Func<bool> processAlive, CancellationToken ct)
    {
        var socket = await UnixSocket.ConnectWithRetryAsync(path, timeout, processAlive, ct).ConfigureAwait(false);
        var client = new QmpClient(socket, onEvent);
        try
        {
            await client._greeting.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
            await client.ExecuteAsync("qmp_capabilities", null, ct).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Runs one command and returns its "return" value; a QMP error becomes a <see cref="QmpException"/>.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var reply = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _pending, reply);
            if (_readLoop.IsCompleted) throw new QmpException("QEMU closed its QMP socket.");
            var msg = new JsonObject { ["execute"] = command };
            // Arguments are built as JSON nodes: no reflection-based serialisation (its first use costs a
            // host tens of milliseconds of JIT on a restore's critical path).
            if (arguments is not null) msg["arguments"] = arguments;
            await _stream.WriteAsync(Encoding.UTF8.GetBytes(msg.ToJsonString() + "\n"), ct).ConfigureAwait(false);
            var result = await reply.Task.WaitAsync(ct).ConfigureAwait(false);
            if (result["error"] is JsonObject err)
                throw new QmpException($"QEMU refused '{command}': {err["desc"]?.GetValue<string>() ?? err.ToJsonString()}");
            return result["return"];
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // ObjectDisposedException: QEMU exited and the read loop closed the stream as this command was sent.
            throw new QmpException($"The QMP connection broke during '{command}': {ex.Message}");
        }
        finally
        {
            Volatile.Write(ref _pending, null);
            _gate.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        using var reader = new StreamReader(_stream, new UTF8Encoding(false));
        try
        {
            while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                if (JsonNode.Parse(line) is not JsonObject msg) continue;
                if (msg["QMP"] is not null) _greeting.TrySetResult(msg);
                else if (msg["event"] is JsonNode ev) _onEvent(ev.GetValue<string>(), msg["data"] as JsonObject);
                else Volatile.Read(ref _pending)?.TrySetResult(msg);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or JsonException or SocketException)
        {
            // The connection is gone; fall through and fail whoever waits.
        }
        var closed = new QmpException("QEMU closed its QMP socket.");
        _greeting.TrySetException(closed);
        Volatile.Read(ref _pending)?.TrySetException(closed);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
        _socket.Dispose();
        await _readLoop.ConfigureAwait(false);
        _stream.Dispose();
        _gate.Dispose();
    }
}

/// <summary>QEMU refused a QMP command or the QMP connection broke.</summary>
public sealed class QmpException : Exception
{
    /// <summary>Makes the exception.</summary>
    public QmpException(string message) : base(message) { }
}
