using System.Net.Sockets;
using System.Text.Json.Serialization;
using MacVm.Engine.Operations;
using StreamJsonRpc;
using StreamJsonRpc.Protocol;

namespace MacVm.Engine.HostProtocol;

/// <summary>A JSON-RPC connection to one VM's host process over its control socket.</summary>
public sealed class HostClient : IAsyncDisposable
{
    private readonly JsonRpc _rpc;
    private readonly Socket _socket;

    private HostClient(Socket socket)
    {
        _socket = socket;
        var stream = new NetworkStream(socket, ownsSocket: true);
        _rpc = new JsonRpc(new NewLineDelimitedMessageHandler(stream, stream, HostRpc.CreateFormatter()));
        _rpc.StartListening();
    }

    /// <summary>
    /// Connects to the socket, or returns null when no host listens there (no file, or refused):
    /// the caller decides what that means for the VM's state.
    /// </summary>
    public static async Task<HostClient?> TryConnectAsync(string socketPath, CancellationToken ct)
    {
        if (!File.Exists(socketPath)) return null;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
            return new HostClient(socket);
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }
    }

    /// <summary>The host's view of the VM.</summary>
    public Task<VmStatus> GetStatusAsync(CancellationToken ct) => Call<VmStatus>(HostMethods.GetStatus, ct);

    /// <summary>Stops the VM; returns once the hypervisor has exited.</summary>
    public Task<VmStatus> StopAsync(StopRequest request, CancellationToken ct) => Call<VmStatus>(HostMethods.Stop, ct, request);

    /// <summary>Returns once the guest booted, the VM ended, or <paramref name="timeoutMs"/> passed.</summary>
    public Task<VmStatus> WaitForBootAsync(int timeoutMs, CancellationToken ct) => Call<VmStatus>(HostMethods.WaitForBoot, ct, timeoutMs);

    /// <summary>Saves the machine state (see <see cref="HostMethods.Save"/>).</summary>
    public Task<SaveResult> SaveAsync(SaveRequest request, CancellationToken ct) => Call<SaveResult>(HostMethods.Save, ct, request);

    /// <summary>Pauses the guest.</summary>
    public Task<VmStatus> PauseAsync(CancellationToken ct) => Call<VmStatus>(HostMethods.Pause, ct);

    /// <summary>Resumes the guest.</summary>
    public Task<VmStatus> ResumeAsync(CancellationToken ct) => Call<VmStatus>(HostMethods.Resume, ct);

    /// <summary>Re-plugs the NIC (see <see cref="HostMethods.SetNetwork"/>).</summary>
    public Task<VmStatus> SetNetworkAsync(NetworkAttachment attachment, CancellationToken ct) => Call<VmStatus>(HostMethods.SetNetwork, ct, attachment);

    /// <summary>Serves an IP configuration to the guest (see <see cref="HostMethods.SetGuestIp"/>).</summary>
    public Task<VmStatus> SetGuestIpAsync(GuestIpConfiguration? config, CancellationToken ct) => Call<VmStatus>(HostMethods.SetGuestIp, ct, config);

    /// <summary>Runs a shell script in the guest.</summary>
    public Task<GuestCommandResult> RunInGuestAsync(string script, int timeoutMs, CancellationToken ct) => Call<GuestCommandResult>(HostMethods.RunInGuest, ct, script, timeoutMs);

    /// <summary>Pings the guest agent.</summary>
    public Task<GuestPingResult> PingGuestAsync(int timeoutMs, CancellationToken ct) => Call<GuestPingResult>(HostMethods.PingGuest, ct, timeoutMs);

    /// <summary>Captures and encodes the display.</summary>
    public Task<MacVmScreenshot> ScreenshotAsync(ScreenshotRequest request, CancellationToken ct) => Call<MacVmScreenshot>(HostMethods.Screenshot, ct, request);

    private async Task<T> Call<T>(string method, CancellationToken ct, params object?[] args)
    {
        try
        {
            return await _rpc.InvokeWithCancellationAsync<T>(method, args, ct).ConfigureAwait(false);
        }
        catch (RemoteInvocationException ex)
        {
            // The host formats its errors for people; keep its words and its problem code.
            var problem = HostErrorCodes.Problem((int)ex.ErrorCode);
            var kind = (int)ex.ErrorCode switch
            {
                HostErrorCodes.InvalidState => MacVmErrorKind.InvalidState,
                HostErrorCodes.NoGuestAgent or HostErrorCodes.GuestNotAnswering => MacVmErrorKind.GuestFailed,
                _ => MacVmErrorKind.HostFailed,
            };
            throw new MacVmException(kind, problem, ex.Message, inner: ex);
        }
        catch (ConnectionLostException ex)
        {
            throw new MacVmException(MacVmErrorKind.HostFailed, "HostGone", "The VM's host process closed the connection: " + ex.Message, inner: ex);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _rpc.Dispose();
        await _rpc.Completion.ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
        _socket.Dispose();
    }
}

/// <summary>Settings both ends of the control protocol share.</summary>
public static class HostRpc
{
    /// <summary>
    /// System.Text.Json with the model's settings (camelCase, enums as strings), from code generated at build
    /// time for every type the protocol carries (<see cref="HostProtocolJsonContext"/>).
    /// </summary>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2026", Justification = JsonJustification)]
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("AOT", "IL3050", Justification = JsonJustification)]
    public static SystemTextJsonFormatter CreateFormatter()
    {
        var f = new CopyingSystemTextJsonFormatter();
        f.JsonSerializerOptions.PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.CamelCase;
        f.JsonSerializerOptions.TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine(
            HostProtocolJsonContext.Default, new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver());
        return f;
    }

    /// <summary>Why the formatter is safe in the host, which is compiled ahead of time.</summary>
    internal const string JsonJustification =
        "Every type of the control protocol has generated code (HostProtocolJsonContext); the reflection resolver behind it " +
        "only meets StreamJsonRpc's own error data, which the host never sends (its errors are LocalRpcExceptions without data).";
}

/// <summary>
/// SystemTextJsonFormatter, but each message it reads gets its own copy of the bytes. NewLineDelimitedMessageHandler
/// releases a line's pipe memory as soon as Deserialize returns, while a JsonDocument parsed from a single-segment
/// buffer keeps pointing into that memory until JsonRpc has read the result: a message that fits one pipe segment
/// could then be read after the pipe reused the memory ("'0x00' is invalid after a value", seen with small
/// screenshot results). A copy per message is cheap next to a socket round trip.
/// </summary>
[System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2109", Justification = HostRpc.JsonJustification)]
internal sealed class CopyingSystemTextJsonFormatter : SystemTextJsonFormatter, IJsonRpcMessageFormatter, IJsonRpcMessageTextFormatter
{
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2026", Justification = HostRpc.JsonJustification)]
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("AOT", "IL3050", Justification = HostRpc.JsonJustification)]
    public CopyingSystemTextJsonFormatter()
    {
    }

    JsonRpcMessage IJsonRpcMessageFormatter.Deserialize(System.Buffers.ReadOnlySequence<byte> contentBuffer) =>
        Deserialize(Own(contentBuffer));

    JsonRpcMessage IJsonRpcMessageTextFormatter.Deserialize(System.Buffers.ReadOnlySequence<byte> contentBuffer, System.Text.Encoding encoding) =>
        Deserialize(Own(contentBuffer), encoding);

    // JsonDocument copies a multi-segment buffer itself; only a single segment is used in place.
    private static System.Buffers.ReadOnlySequence<byte> Own(System.Buffers.ReadOnlySequence<byte> buffer) =>
        buffer.IsSingleSegment ? new System.Buffers.ReadOnlySequence<byte>(buffer.First.ToArray()) : buffer;
}

/// <summary>
/// Serialisation code generated at build time for what travels on the control socket: with reflection, a
/// host's first answers (vm.waitForBoot on a restore's critical path, the first ping) cost it tens of
/// milliseconds of reflection and emitted code. Anything not listed falls back to reflection.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(VmStatus))]
[JsonSerializable(typeof(StopRequest))]
[JsonSerializable(typeof(SaveRequest))]
[JsonSerializable(typeof(SaveResult))]
[JsonSerializable(typeof(GuestCommandResult))]
[JsonSerializable(typeof(GuestPingResult))]
[JsonSerializable(typeof(ScreenshotRequest))]
[JsonSerializable(typeof(MacVmScreenshot))]
[JsonSerializable(typeof(NetworkAttachment))]
[JsonSerializable(typeof(GuestIpConfiguration))]
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(string))]
internal sealed partial class HostProtocolJsonContext : JsonSerializerContext
{
}
