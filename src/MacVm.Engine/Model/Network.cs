using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace MacVm;

/// <summary>What is behind a VM's network card.</summary>
public enum NetworkKind
{
    /// <summary>Nothing: the cable is unplugged, the guest sees no carrier.</summary>
    None,
    /// <summary>The hypervisor's NAT (outbound traffic through the host).</summary>
    Nat,
    /// <summary>A test network: a unix datagram server, one datagram per Ethernet frame.</summary>
    Socket,
}

/// <summary>
/// Where a VM's one NIC is plugged in. Pure data, compared by value. The NIC itself (its MAC, its slot)
/// never changes; only this does, at any time while the VM runs.
/// </summary>
public sealed record NetworkAttachment
{
    /// <summary>The kind of attachment.</summary>
    public NetworkKind Kind { get; init; }

    /// <summary>For <see cref="NetworkKind.Socket"/>: the datagram server's socket path.</summary>
    public string? SocketPath { get; init; }

    /// <summary>For <see cref="NetworkKind.Socket"/>: the name this VM's client socket is derived from (default: the VM's id).</summary>
    public string? ClientId { get; init; }

    /// <summary>In a live status: the client socket the host bound for a datagram server (the server sees frames from this path).</summary>
    public string? ClientSocketPath { get; init; }

    /// <summary>Cable unplugged.</summary>
    public static NetworkAttachment None { get; } = new() { Kind = NetworkKind.None };

    /// <summary>The hypervisor's NAT.</summary>
    public static NetworkAttachment Nat { get; } = new() { Kind = NetworkKind.Nat };

    /// <summary>A datagram server at <paramref name="socketPath"/>.</summary>
    public static NetworkAttachment Socket(string socketPath, string? clientId = null) =>
        new() { Kind = NetworkKind.Socket, SocketPath = socketPath, ClientId = clientId };

    /// <summary>"None", "Nat", or "Socket:/path/to/server.sock".</summary>
    public override string ToString() => Kind == NetworkKind.Socket ? $"Socket:{SocketPath}" : Kind.ToString();
}

/// <summary>The IPv4 configuration the host serves to a guest (and the guest acknowledges).</summary>
public sealed record GuestIpConfiguration
{
    /// <summary>The guest's IPv4 address, dotted quad.</summary>
    public required string Address { get; init; }

    /// <summary>The subnet prefix length, 0 to 32.</summary>
    public required int PrefixLength { get; init; }

    /// <summary>The default gateway, dotted quad, inside the subnet.</summary>
    public required string Gateway { get; init; }

    /// <summary>The MAC the guest should give its NIC (VMs restored from one snapshot share the saved one), or null to keep it.</summary>
    public string? MacAddress { get; init; }

    /// <summary>The subnet mask as a dotted quad (from <see cref="PrefixLength"/>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string SubnetMask => GuestIpRules.MaskFromPrefix(PrefixLength).ToString();

    /// <summary>"10.0.0.5/24 via 10.0.0.1".</summary>
    public override string ToString() => $"{Address}/{PrefixLength} via {Gateway}";
}

/// <summary>Validation and the wire form of guest IP configurations: IPv4 only.</summary>
public static class GuestIpRules
{
    /// <summary>
    /// Checks and builds a configuration. Exactly one of <paramref name="prefixLength"/> and <paramref name="subnetMask"/> is given.
    /// Throws <see cref="ArgumentException"/> naming the value and the fix.
    /// </summary>
    public static GuestIpConfiguration Create(string address, int? prefixLength, string? subnetMask, string gateway, string? macAddress = null)
    {
        var ip = ParseIPv4(address, "IPAddress");
        var gw = ParseIPv4(gateway, "Gateway");
        int prefix;
        if (prefixLength is { } p)
        {
            if (subnetMask is not null) throw new ArgumentException("Give -PrefixLength or -SubnetMask, not both.", nameof(subnetMask));
            if (p is < 0 or > 32) throw new ArgumentOutOfRangeException(nameof(prefixLength), p, $"PrefixLength {p} is out of range: give 0 to 32 (24 means 255.255.255.0).");
            prefix = p;
        }
        else if (subnetMask is not null)
        {
            prefix = PrefixFromMask(subnetMask);
        }
        else
        {
            throw new ArgumentException("Give the subnet as -PrefixLength (e.g. 24) or -SubnetMask (e.g. 255.255.255.0).", nameof(prefixLength));
        }
        if (prefix is 0 or > 30)
            throw new ArgumentOutOfRangeException(nameof(prefixLength), prefix, $"A /{prefix} subnet has no room for a guest and a gateway: give a prefix length of 1 to 30.");
        var mask = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        uint a = ToUInt(ip), g = ToUInt(gw);
        if ((a & mask) != (g & mask))
            throw new ArgumentException($"The gateway '{gateway}' is not inside the subnet {FromUInt(a & mask)}/{prefix} of '{address}'. Give a gateway in that subnet, or a shorter prefix.", nameof(gateway));
        foreach (var (value, what, name) in new[] { (a, address, "IPAddress"), (g, gateway, "Gateway") })
        {
            if ((value & ~mask) == 0)
                throw new ArgumentException($"'{what}' is the network address of {FromUInt(value & mask)}/{prefix}, not a host address. Give another {name}.", name);
            if ((value & ~mask) == ~mask)
                throw new ArgumentException($"'{what}' is the broadcast address of {FromUInt(value & mask)}/{prefix}, not a host address. Give another {name}.", name);
        }
        if (a == g) throw new ArgumentException($"The address '{address}' is the gateway itself. Give the guest another address.", "IPAddress");
        return new GuestIpConfiguration { Address = ip.ToString(), PrefixLength = prefix, Gateway = gw.ToString(), MacAddress = macAddress };
    }

    /// <summary>Parses a dotted-quad IPv4 address strictly (four decimal parts); IPv6 is refused with a clear message.</summary>
    public static IPAddress ParseIPv4(string value, string parameter)
    {
        if (IPAddress.TryParse(value, out var parsed) && parsed.AddressFamily == AddressFamily.InterNetworkV6)
            throw new ArgumentException($"'{value}' is an IPv6 address; the guest IP channel supports IPv4 only. Give a dotted quad such as 10.0.0.5.", parameter);
        var parts = value.Split('.');
        if (parts.Length != 4 || parts.Any(s => s.Length is 0 or > 3 || !s.All(char.IsAsciiDigit) || int.Parse(s, CultureInfo.InvariantCulture) > 255))
            throw new ArgumentException($"'{value}' is not an IPv4 address. Give a dotted quad such as 10.0.0.5 (IPv4 only).", parameter);
        return IPAddress.Parse(value);
    }

    /// <summary>The prefix length of a contiguous mask such as 255.255.255.0; throws for a non-contiguous one.</summary>
    public static int PrefixFromMask(string mask)
    {
        var m = ToUInt(ParseIPv4(mask, "SubnetMask"));
        var prefix = System.Numerics.BitOperations.LeadingZeroCount(~m);
        var expected = prefix == 0 ? 0u : uint.MaxValue << (32 - prefix);
        if (m != expected)
            throw new ArgumentException($"The subnet mask '{mask}' is not contiguous (its one bits must all come first, as in 255.255.255.0). Give a mask such as 255.255.0.0, or -PrefixLength.", "SubnetMask");
        return prefix;
    }

    /// <summary>The mask of a prefix length.</summary>
    public static IPAddress MaskFromPrefix(int prefix) => FromUInt(prefix == 0 ? 0u : uint.MaxValue << (32 - prefix));

    /// <summary>The one-line JSON the host serves: <c>{"ip":"…","mask":"…","gw":"…"}</c> plus <c>"mac"</c> when set.</summary>
    public static string ToWire(GuestIpConfiguration c)
    {
        var o = new System.Text.Json.Nodes.JsonObject { ["ip"] = c.Address, ["mask"] = c.SubnetMask, ["gw"] = c.Gateway };
        if (c.MacAddress is not null) o["mac"] = c.MacAddress;
        return o.ToJsonString();
    }

    /// <summary>Reads the wire form back (an agent's acknowledgement); null when it is not one.</summary>
    public static GuestIpConfiguration? FromWire(string json)
    {
        try
        {
            var o = System.Text.Json.Nodes.JsonNode.Parse(json)?.AsObject();
            if (o?["ip"]?.GetValue<string>() is not { } ip || o["mask"]?.GetValue<string>() is not { } mask || o["gw"]?.GetValue<string>() is not { } gw) return null;
            return new GuestIpConfiguration { Address = ip, PrefixLength = PrefixFromMask(mask), Gateway = gw, MacAddress = o["mac"]?.GetValue<string>() };
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or ArgumentException or FormatException)
        {
            return null;
        }
    }

    /// <summary>A random locally administered unicast MAC (02:xx:…): stable per VM once chosen.</summary>
    public static string NewMacAddress()
    {
        var b = System.Security.Cryptography.RandomNumberGenerator.GetBytes(6);
        b[0] = 0x02;
        return string.Join(':', b.Select(x => x.ToString("x2", CultureInfo.InvariantCulture)));
    }

    private static uint ToUInt(IPAddress ip)
    {
        var b = ip.GetAddressBytes();
        return (uint)(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
    }

    private static IPAddress FromUInt(uint v) => new(new[] { (byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v });
}
