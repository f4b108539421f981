using MacVm;
using MacVm.Engine.HostProtocol;
using StreamJsonRpc;

namespace MacVm.Host;

/// <summary>The JSON-RPC methods of <see cref="HostMethods"/>, served for one VM.</summary>
public sealed class HostControlService
{
    private readonly VmHost _host;

    internal HostControlService(VmHost host) => _host = host;

    /// <summary>The VM's status.</summary>
    [JsonRpcMethod(HostMethods.GetStatus)]
    public VmStatus GetStatus() => _host.Status;

    /// <summary>Stops the VM and returns its final status.</summary>
    [JsonRpcMethod(HostMethods.Stop)]
    public Task<VmStatus> StopAsync(StopRequest request) =>
        _host.StopAsync(request.Force, TimeSpan.FromMilliseconds(Math.Max(0, request.TimeoutMs)));

    /// <summary>Waits until the guest shows a sign of life or the VM ends.</summary>
    [JsonRpcMethod(HostMethods.WaitForBoot)]
    public Task<VmStatus> WaitForBootAsync(int timeoutMs, CancellationToken ct) =>
        _host.WaitForAsync(s => s.GuestBooted || s.IsTerminal, TimeSpan.FromMilliseconds(timeoutMs), ct);

    /// <summary>Saves the machine state and freezes the disk layer; one save at a time.</summary>
    [JsonRpcMethod(HostMethods.Save)]
    public async Task<SaveResult> SaveAsync(SaveRequest request, CancellationToken ct)
    {
        var machine = RequireState(VmState.Running, VmState.Paused);
        return await _host.SaveAsync(machine, request, ct).ConfigureAwait(false);
    }

    /// <summary>Pauses the guest.</summary>
    [JsonRpcMethod(HostMethods.Pause)]
    public async Task<VmStatus> PauseAsync(CancellationToken ct)
    {
        var machine = RequireState(VmState.Running, VmState.Paused);
        await machine.PauseAsync(ct).ConfigureAwait(false);
        return _host.Update(s => s with { State = VmState.Paused });
    }

    /// <summary>Resumes the guest.</summary>
    [JsonRpcMethod(HostMethods.Resume)]
    public async Task<VmStatus> ResumeAsync(CancellationToken ct)
    {
        var machine = RequireState(VmState.Running, VmState.Paused);
        await machine.ResumeAsync(ct).ConfigureAwait(false);
        return _host.Update(s => s with { State = VmState.Running });
    }

    /// <summary>Re-plugs the NIC; a network that cannot be reached leaves it where it was.</summary>
    [JsonRpcMethod(HostMethods.SetNetwork)]
    public async Task<VmStatus> SetNetworkAsync(NetworkAttachment attachment, CancellationToken ct)
    {
        RequireState(VmState.Running, VmState.Paused);
        try
        {
            return await _host.SetNetworkAsync(attachment, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw Problem(HostErrorCodes.NetworkFailed, $"VM '{_host.Config.Name}' could not be attached to {attachment}: {ex.Message}");
        }
    }

    /// <summary>Serves an IP configuration to the guest (null: tell it to wait).</summary>
    [JsonRpcMethod(HostMethods.SetGuestIp)]
    public VmStatus SetGuestIp(GuestIpConfiguration? config)
    {
        RequireState(VmState.Running, VmState.Paused, VmState.Starting);
        return _host.SetGuestIp(config);
    }

    /// <summary>Runs a shell script in the guest.</summary>
    [JsonRpcMethod(HostMethods.RunInGuest)]
    public async Task<GuestCommandResult> RunInGuestAsync(string script, int timeoutMs, CancellationToken ct)
    {
        RequireState(VmState.Running);
        var agent = _host.Agent ?? throw Problem(HostErrorCodes.NoGuestAgent,
            $"The image '{_host.Config.Image}' does not declare the MacVm guest agent, so nothing can run in the guest.");
        try
        {
            // A restored guest's clock is wrong until the host has set it: no script may run before that.
            await _host.GuestClockSettled.WaitAsync(TimeSpan.FromMilliseconds(timeoutMs), ct).ConfigureAwait(false);
            var (code, output) = await agent.RunAsync(script, TimeSpan.FromMilliseconds(timeoutMs), ct).ConfigureAwait(false);
            return new GuestCommandResult { ExitCode = code, Output = output };
        }
        catch (Exception ex) when (ex is TimeoutException or IOException)
        {
            throw Problem(HostErrorCodes.GuestNotAnswering, $"The guest agent of VM '{_host.Config.Name}' did not run the script: {ex.Message}");
        }
    }

    /// <summary>A round trip through the guest agent.</summary>
    [JsonRpcMethod(HostMethods.PingGuest)]
    public async Task<GuestPingResult> PingGuestAsync(int timeoutMs, CancellationToken ct)
    {
        RequireState(VmState.Running);
        var agent = _host.Agent ?? throw Problem(HostErrorCodes.NoGuestAgent,
            $"The image '{_host.Config.Image}' does not declare the MacVm guest agent, so there is nothing to ping. Import the image with -GuestAgent if its guest runs the agent.");
        try
        {
            var (token, rtt) = await agent.PingAsync(TimeSpan.FromMilliseconds(timeoutMs), ct).ConfigureAwait(false);
            return new GuestPingResult { Token = token, RoundTripMs = rtt.TotalMilliseconds };
        }
        catch (Exception ex) when (ex is TimeoutException or IOException)
        {
            throw Problem(HostErrorCodes.GuestNotAnswering, $"The guest agent of VM '{_host.Config.Name}' did not answer: {ex.Message}");
        }
    }

    /// <summary>Captures the display and encodes it (running or paused VM).</summary>
    [JsonRpcMethod(HostMethods.Screenshot)]
    public async Task<MacVmScreenshot> ScreenshotAsync(ScreenshotRequest request, CancellationToken ct)
    {
        RequireState(VmState.Running, VmState.Paused);
        try
        {
            return await _host.Screenshots.TakeAsync(request, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _host.Log.Write($"Screenshot failed: {ex}");
            throw Problem(HostErrorCodes.CaptureFailed, $"The display of VM '{_host.Config.Name}' could not be captured: {ex.Message}");
        }
    }

    private Engine.Drivers.IVirtualMachine RequireState(params VmState[] allowed)
    {
        var status = _host.Status;
        if (_host.Machine is null || Array.IndexOf(allowed, status.State) < 0)
            throw Problem(HostErrorCodes.InvalidState, $"VM '{_host.Config.Name}' is {status.State}; this needs it {string.Join(" or ", allowed)}.");
        return _host.Machine;
    }

    private static LocalRpcException Problem(int code, string message) => new(message) { ErrorCode = code };
}
