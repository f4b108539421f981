using MacVm.Engine.Drivers;

namespace MacVm.Host;

/// <summary>
/// The host's side of the guest IP protocol: what to tell a guest that asks (<c>wait</c>, or its
/// configuration as one JSON line) and what the guest said it applied, recorded in the VM's status.
/// </summary>
internal sealed class GuestIpService : IGuestIpResponder
{
    private readonly VmHost _host;

    public GuestIpService(VmHost host) => _host = host;

    /// <summary>The reply that tells the guest to keep polling: exactly these four bytes before the newline.</summary>
    public const string WaitReply = "wait";

    public string CurrentReply() => _host.Status.GuestIpServed is { } served ? GuestIpRules.ToWire(served) : WaitReply;

    public void Applied(string acknowledgement)
    {
        var applied = GuestIpRules.FromWire(acknowledgement);
        if (applied is null)
        {
            _host.Log.Write($"Guest IP: ignored an acknowledgement that is not a configuration: {acknowledgement}");
            return;
        }
        var before = _host.Status.GuestIp;
        if (before == applied) return;
        _host.Update(s => s with { GuestIp = applied });
        _host.Log.Write($"Guest IP: the guest applied {applied}{(applied.MacAddress is null ? "" : $" (MAC {applied.MacAddress})")}.");
    }
}
