using MacVm.Engine.Drivers.Qemu;
using MacVm.Engine.Operations;
using MacVm.Engine.Store;
using Xunit;

namespace MacVm.Tests.Unit;

public class NetworkModelTests
{
    private static VmConfiguration Config(NetworkAttachment? network, string? mac = "02:aa:bb:cc:dd:ee") => new()
    {
        Name = "web1",
        Image = "tiny",
        ImageDigest = "sha256:00",
        Network = network,
        MacAddress = mac,
        Boot = new BootSpec { KernelPath = "/s/k", GuestAgent = true },
    };

    public static TheoryData<NetworkAttachment?> Attachments => new()
    {
        null,
        NetworkAttachment.Nat,
        NetworkAttachment.Socket("/tmp/lab.sock"),
        NetworkAttachment.Socket("/tmp/lab.sock", "client-7"),
    };

    [Theory]
    [MemberData(nameof(Attachments))]
    public void TheAttachmentAndMacRoundTripThroughVmJson(NetworkAttachment? network)
    {
        var config = Config(network);
        var json = ModelJson.Serialize(config);
        var back = ModelJson.Deserialize<VmConfiguration>(json, "test");
        Assert.Equal(config.Network, back.Network);
        Assert.Equal("02:aa:bb:cc:dd:ee", back.MacAddress);
        Assert.Equal(json, ModelJson.Serialize(back));
    }

    [Fact]
    public void KindsAreWrittenAsNames()
    {
        var json = ModelJson.Serialize(Config(NetworkAttachment.Socket("/tmp/lab.sock", "c1")));
        Assert.Contains("\"kind\": \"Socket\"", json);
        Assert.Contains("\"socketPath\": \"/tmp/lab.sock\"", json);
        Assert.Contains("\"clientId\": \"c1\"", json);
    }

    [Fact]
    public void StatusRoundTripsTheLiveAttachmentAndTheGuestIp()
    {
        var ip = new GuestIpConfiguration { Address = "10.0.2.15", PrefixLength = 24, Gateway = "10.0.2.1", MacAddress = "02:00:00:00:00:09" };
        var status = new VmStatus
        {
            State = VmState.Running,
            Network = NetworkAttachment.Socket("/tmp/lab.sock") with { ClientSocketPath = "/tmp/macvm-0/net/web1-1.sock" },
            GuestIpServed = ip,
            GuestIp = ip,
        };
        var back = ModelJson.Deserialize<VmStatus>(ModelJson.Serialize(status), "test");
        Assert.Equal(status, back);
        Assert.True(back.GuestIpAssigned);
        Assert.False((back with { GuestIpServed = ip with { Address = "10.0.2.16" } }).GuestIpAssigned);
        Assert.False((back with { GuestIp = null }).GuestIpAssigned);
    }

    [Fact]
    public void TheMacVmObjectShowsTheLiveAttachmentElseTheConfiguredOne()
    {
        var stopped = new MacVm(Config(NetworkAttachment.Nat), new VmStatus { State = VmState.Stopped }, "/s/vms/web1");
        Assert.Equal(NetworkKind.Nat, stopped.Network.Kind);
        var running = new MacVm(Config(NetworkAttachment.Nat), new VmStatus { State = VmState.Running, Network = NetworkAttachment.None }, "/s/vms/web1");
        Assert.Equal(NetworkKind.None, running.Network.Kind);
        Assert.Equal(NetworkKind.None, new MacVm(Config(null), new VmStatus(), "/x").Network.Kind);
    }

    [Theory]
    [InlineData("10.0.2.15", 24, null, "10.0.2.1", "255.255.255.0")]
    [InlineData("192.168.7.200", null, "255.255.254.0", "192.168.6.1", "255.255.254.0")]
    [InlineData("172.16.0.2", 30, null, "172.16.0.1", "255.255.255.252")]
    public void GoodConfigurationsAreAccepted(string ip, int? prefix, string? mask, string gw, string expectedMask)
    {
        var c = GuestIpRules.Create(ip, prefix, mask, gw);
        Assert.Equal(expectedMask, c.SubnetMask);
        Assert.Equal(c with { MacAddress = null }, GuestIpRules.FromWire(GuestIpRules.ToWire(c)));
    }

    [Theory]
    [InlineData("fd00::1", 64, null, "fd00::2", "IPv4 only")]
    [InlineData("10.0.2.256", 24, null, "10.0.2.1", "not an IPv4 address")]
    [InlineData("10.0.2.5", null, "255.0.255.0", "10.0.2.1", "not contiguous")]
    [InlineData("10.0.2.5", 24, null, "10.0.3.1", "not inside the subnet")]
    [InlineData("10.0.2.0", 24, null, "10.0.2.1", "network address")]
    [InlineData("10.0.2.255", 24, null, "10.0.2.1", "broadcast address")]
    [InlineData("10.0.2.5", 24, null, "10.0.2.255", "broadcast address")]
    [InlineData("10.0.2.5", 31, null, "10.0.2.4", "prefix length")]
    [InlineData("10.0.2.5", null, null, "10.0.2.1", "PrefixLength")]
    [InlineData("10.0.2.5", 24, "255.255.255.0", "10.0.2.1", "not both")]
    [InlineData("10.0.2.1", 24, null, "10.0.2.1", "gateway itself")]
    public void BadConfigurationsAreRefusedNamingTheValue(string ip, int? prefix, string? mask, string gw, string says)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => GuestIpRules.Create(ip, prefix, mask, gw));
        Assert.Contains(says, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TheWireFormIsTheSeedsJsonLinePlusTheMac()
    {
        var c = GuestIpRules.Create("10.0.2.15", 24, null, "10.0.2.1", "02:00:00:00:00:07");
        Assert.Equal("{\"ip\":\"10.0.2.15\",\"mask\":\"255.255.255.0\",\"gw\":\"10.0.2.1\",\"mac\":\"02:00:00:00:00:07\"}", GuestIpRules.ToWire(c));
        Assert.Null(GuestIpRules.FromWire("wait"));
        Assert.Null(GuestIpRules.FromWire("{\"ip\":\"10.0.2.15\"}"));
    }

    [Fact]
    public void NewMacsAreLocallyAdministeredUnicast()
    {
        var mac = GuestIpRules.NewMacAddress();
        Assert.Matches("^02(:[0-9a-f]{2}){5}$", mac);
        Assert.NotEqual(mac, GuestIpRules.NewMacAddress());
    }

    [Theory]
    [InlineData("lab-1")]
    [InlineData("a.b_c")]
    public void ClientIdsNameTheClientSocket(string id)
    {
        NetworkRules.CheckClientId(id);
        Assert.EndsWith($"/net/{id}.sock", NetworkRules.ClientSocketPath(id), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-lead")]
    [InlineData("has space")]
    [InlineData("a/b")]
    public void BadClientIdsAreRefused(string id) =>
        Assert.Contains(id, Assert.Throws<ArgumentException>(() => NetworkRules.CheckClientId(id)).Message, StringComparison.Ordinal);

    [Fact]
    public void TheDefaultClientIdIsTheNameAndAPieceOfTheId()
    {
        var c = Config(null) with { Id = Guid.Parse("0123456789abcdef0123456789abcdef") };
        Assert.Equal("web1-01234567", NetworkRules.DefaultClientId(c));
    }

    [Fact]
    public void TheNicTalksToTheHostsSocketAndNatIsAlwaysPresent()
    {
        foreach (var network in new[] { null, NetworkAttachment.Nat, NetworkAttachment.Socket("/tmp/lab.sock") })
        {
            var args = QemuCommandLine.Build(Config(network), new VmPaths("/s/vms/web1"), "tcg");
            var line = string.Join(' ', args);
            // The same layout whatever the attachment: a saved state loads into every other one.
            Assert.Contains("-netdev dgram,id=net0,local.type=unix,local.path=/s/vms/web1/nic-q.sock,remote.type=unix,remote.path=/s/vms/web1/nic-h.sock", line);
            Assert.Contains("-device virtio-net-pci,id=nic0,netdev=net0,mac=02:aa:bb:cc:dd:ee,romfile=", line);
            Assert.Contains("-netdev user,id=nat0 -netdev hubport,id=natport0,hubid=0,netdev=nat0", line);
            Assert.Contains("-netdev dgram,id=natlink0,local.type=unix,local.path=/s/vms/web1/nat-q.sock,remote.type=unix,remote.path=/s/vms/web1/nat-h.sock", line);
            Assert.Contains($"virtserialport,id=ipport,bus=vser0.0,chardev=ip0,name={QemuCommandLine.GuestIpPortName}", line);
            Assert.DoesNotContain("/tmp/lab.sock", line);
        }
    }
}

/// <summary>The checks and client sockets of NetworkRules, against real unix sockets in a scratch folder.</summary>
public sealed class NetworkRulesSocketTests : IDisposable
{
    private readonly string _dir = Path.Combine("/tmp", "macvm-unit-" + Guid.NewGuid().ToString("N")[..8]);

    public NetworkRulesSocketTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private System.Net.Sockets.Socket Bound(string name, System.Net.Sockets.SocketType type)
    {
        var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, type, System.Net.Sockets.ProtocolType.Unspecified);
        s.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(_dir, name)));
        if (type == System.Net.Sockets.SocketType.Stream) s.Listen(1);
        return s;
    }

    [Fact]
    public void ADatagramServerPassesAndThePathBecomesAbsolute()
    {
        using var server = Bound("srv.sock", System.Net.Sockets.SocketType.Dgram);
        var checkedAttachment = NetworkRules.Validate(NetworkAttachment.Socket(Path.Combine(_dir, "srv.sock")));
        Assert.Equal(Path.Combine(_dir, "srv.sock"), checkedAttachment.SocketPath);
    }

    [Fact]
    public void AStreamSocketAFileAndNothingAreRefusedNamingThePath()
    {
        using var stream = Bound("stream.sock", System.Net.Sockets.SocketType.Stream);
        File.WriteAllText(Path.Combine(_dir, "file"), "x");
        Assert.Contains("not a datagram socket", Assert.Throws<ArgumentException>(() => NetworkRules.CheckServer(Path.Combine(_dir, "stream.sock"))).Message, StringComparison.Ordinal);
        Assert.Contains("is not a socket", Assert.Throws<ArgumentException>(() => NetworkRules.CheckServer(Path.Combine(_dir, "file"))).Message, StringComparison.Ordinal);
        var missing = Assert.Throws<MacVmException>(() => NetworkRules.CheckServer(Path.Combine(_dir, "none.sock")));
        Assert.Equal("NetworkNotFound", missing.Problem);
        Assert.Contains(Path.Combine(_dir, "none.sock"), missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AStaleSocketFileIsNotAServer()
    {
        Bound("stale.sock", System.Net.Sockets.SocketType.Dgram).Dispose(); // the file stays, nobody listens
        Assert.Equal("NetworkNotFound", Assert.Throws<MacVmException>(() => NetworkRules.CheckServer(Path.Combine(_dir, "stale.sock"))).Problem);
    }

    [Fact]
    public void APathOverTheLimitIsRefusedWithItsLength()
    {
        var path = "/tmp/" + new string('x', 120) + ".sock";
        var ex = Assert.Throws<ArgumentException>(() => NetworkRules.Validate(NetworkAttachment.Socket(path)));
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains("limited to 107 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AClientSocketReachesTheServerFromItsOwnPathAndALiveOneIsNotTaken()
    {
        using var server = Bound("srv.sock", System.Net.Sockets.SocketType.Dgram);
        var clientPath = Path.Combine(_dir, "c", "vm1.sock");
        using var client = NetworkRules.ConnectClient(Path.Combine(_dir, "srv.sock"), clientPath);
        client.Send(new byte[] { 1, 2, 3 });
        var buffer = new byte[16];
        System.Net.EndPoint from = new System.Net.Sockets.UnixDomainSocketEndPoint("/");
        Assert.Equal(3, server.ReceiveFrom(buffer, ref from));
        Assert.Equal(clientPath, from.ToString());
        var taken = Assert.Throws<MacVmException>(() => NetworkRules.ConnectClient(Path.Combine(_dir, "srv.sock"), clientPath));
        Assert.Equal("ClientIdInUse", taken.Problem);
        Assert.True(File.Exists(clientPath), "the live client's socket must survive the refused attempt");
    }

    [Fact]
    public void AStaleClientSocketIsReplaced()
    {
        using var server = Bound("srv.sock", System.Net.Sockets.SocketType.Dgram);
        var clientPath = Path.Combine(_dir, "c", "vm1.sock");
        NetworkRules.ConnectClient(Path.Combine(_dir, "srv.sock"), clientPath).Dispose(); // a killed host leaves the file
        using var again = NetworkRules.ConnectClient(Path.Combine(_dir, "srv.sock"), clientPath);
        Assert.True(again.Connected);
    }
}
