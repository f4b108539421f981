using System.Net.Sockets;
using MacVm.Engine.Drivers;
using MacVm.Engine.Operations;

namespace MacVm.Host;

/// <summary>
/// Relays the NIC's frames between the hypervisor and wherever the VM is plugged in: a test network's
/// datagram server, the hypervisor's NAT channel, or nowhere. The NIC never changes: re-plugging swaps
/// the relay's target (no frame in flight is lost, no device is touched) and sets the link state.
/// </summary>
internal sealed class NetworkRelay : IAsyncDisposable
{
    private const int MaxFrame = 65536;
    private readonly IVirtualMachine _machine;
    private readonly HostLog _log;
    private readonly SemaphoreSlim _switching = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _fromGuest;
    private Target? _target;

    /// <summary>One place frames go to and come from.</summary>
    private sealed class Target
    {
        public required Socket Socket { get; init; }
        public required bool Owned { get; init; }
        public required string Description { get; init; }
        public string? OwnedPath { get; init; }
        public CancellationTokenSource Stop { get; } = new();
        public Task? ToGuest { get; set; }
        public bool ReportedSendFailure { get; set; }
    }

    public NetworkRelay(IVirtualMachine machine, HostLog log)
    {
        _machine = machine;
        _log = log;
        _fromGuest = Task.Run(PumpFromGuestAsync, CancellationToken.None);
    }

    /// <summary>Where the NIC is plugged in now.</summary>
    public NetworkAttachment Current { get; private set; } = NetworkAttachment.None;

    /// <summary>The client socket path in use for a datagram server, if any.</summary>
    public string? ClientSocketPath { get; private set; }

    /// <summary>
    /// Plugs the NIC into <paramref name="attachment"/>. The new target is opened first, so a failure
    /// (server gone, client id in use) leaves the VM as it was.
    /// </summary>
    public async Task AttachAsync(NetworkAttachment attachment, string clientId, CancellationToken ct)
    {
        await _switching.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            Target? next = null;
            string? clientPath = null;
            var nicState = NicAttachment.HostRelay;
            switch (attachment.Kind)
            {
                case NetworkKind.Socket:
                    NetworkRules.CheckServer(attachment.SocketPath!);
                    clientPath = NetworkRules.ClientSocketPath(attachment.ClientId ?? clientId);
                    // Re-plugging into the same server keeps the same client path: free it first.
                    if (clientPath == ClientSocketPath) await DetachAsync().ConfigureAwait(false);
                    var socket = NetworkRules.ConnectClient(attachment.SocketPath!, clientPath);
                    next = new Target { Socket = socket, Owned = true, OwnedPath = clientPath, Description = $"datagram server '{attachment.SocketPath}' as '{clientPath}'" };
                    break;
                case NetworkKind.Nat:
                    if (_machine.NatChannel is { } nat)
                        next = new Target { Socket = nat, Owned = false, Description = "the hypervisor's NAT" };
                    else
                        nicState = NicAttachment.Nat;
                    break;
                default:
                    nicState = NicAttachment.Disconnected;
                    break;
            }
            // Unplug first when going nowhere (the guest sees the carrier drop before frames stop);
            // otherwise switch the relay, then make sure the link is up.
            if (nicState == NicAttachment.Disconnected) await _machine.SetNetworkAttachmentAsync(nicState, ct).ConfigureAwait(false);
            var old = Interlocked.Exchange(ref _target, next);
            if (next is not null) next.ToGuest = Task.Run(() => PumpToGuestAsync(next), CancellationToken.None);
            if (nicState != NicAttachment.Disconnected) await _machine.SetNetworkAttachmentAsync(nicState, ct).ConfigureAwait(false);
            if (old is not null) await CloseAsync(old).ConfigureAwait(false);
            Current = attachment;
            ClientSocketPath = clientPath;
            _log.Write($"Network: attached to {next?.Description ?? attachment.ToString()}.");
        }
        finally
        {
            _switching.Release();
        }
    }

    private async Task DetachAsync()
    {
        var old = Interlocked.Exchange(ref _target, null);
        if (old is not null) await CloseAsync(old).ConfigureAwait(false);
        ClientSocketPath = null;
    }

    private static async Task CloseAsync(Target target)
    {
        await target.Stop.CancelAsync().ConfigureAwait(false);
        if (target.Owned)
        {
            target.Socket.Dispose();
            if (target.OwnedPath is { } path) try { File.Delete(path); } catch (IOException) { }
        }
        if (target.ToGuest is not null) await target.ToGuest.ConfigureAwait(false);
        target.Stop.Dispose();
    }

    /// <summary>Guest → current target; frames for no target are dropped (the NIC is unplugged then anyway).</summary>
    private async Task PumpFromGuestAsync()
    {
        var buffer = new byte[MaxFrame];
        Socket nic;
        try
        {
            nic = _machine.NicChannel;
        }
        catch (InvalidOperationException)
        {
            return;
        }
        while (!_stop.IsCancellationRequested)
        {
            int n;
            try
            {
                n = await nic.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused)
            {
                continue; // a frame to QEMU was refused earlier (it restarted); nothing to receive
            }
            catch (SocketException ex)
            {
                _log.Write($"Network: the NIC channel failed ({ex.SocketErrorCode}); relay stops.");
                return;
            }
            var target = Volatile.Read(ref _target);
            if (target is null) continue;
            try
            {
                await target.Socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, target.Stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                // The server went away or the target is being switched: the frame is lost, as on a real cable.
                if (!target.ReportedSendFailure && ex is SocketException se)
                {
                    target.ReportedSendFailure = true;
                    _log.Write($"Network: sending to {target.Description} failed ({se.SocketErrorCode}); frames are dropped until it answers again.");
                }
            }
        }
    }

    /// <summary>Target → guest, until the target is switched away.</summary>
    private async Task PumpToGuestAsync(Target target)
    {
        var buffer = new byte[MaxFrame];
        var nic = _machine.NicChannel;
        while (!target.Stop.IsCancellationRequested)
        {
            try
            {
                var n = await target.Socket.ReceiveAsync(buffer, SocketFlags.None, target.Stop.Token).ConfigureAwait(false);
                if (!ReferenceEquals(Volatile.Read(ref _target), target)) return;
                await nic.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
            {
                // Linux reports an earlier failed send (server gone) on the next receive: wait for it to come back.
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                _log.Write($"Network: receiving from {target.Description} failed ({ex.SocketErrorCode}).");
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        var old = Interlocked.Exchange(ref _target, null);
        if (old is not null) await CloseAsync(old).ConfigureAwait(false);
        await _fromGuest.ConfigureAwait(false);
        _stop.Dispose();
        _switching.Dispose();
    }
}
