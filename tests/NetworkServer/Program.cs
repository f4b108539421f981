// A test network of the kind the seed's VMs attach to: a unix datagram server, one datagram per raw
// Ethernet frame, clients told apart by their socket path and MAC. It is a learning switch between its
// clients and plays a gateway: it answers ARP and ICMP echo for --gateway. Every frame it receives is
// one JSON line in --log (client path, MACs, what it is), which the Pester tests read.
//
// usage: MacVm.NetworkServer --socket PATH --gateway IPV4 --log FILE [--gateway-mac MAC]
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;

var options = ParseArgs(args);
if (options is null)
{
    Console.Error.WriteLine("usage: MacVm.NetworkServer --socket PATH --gateway IPV4 --log FILE [--gateway-mac MAC]");
    return 2;
}
var (socketPath, gatewayIp, logPath, gatewayMac) = options.Value;
if (File.Exists(socketPath)) File.Delete(socketPath);
using var server = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
server.Bind(new UnixDomainSocketEndPoint(socketPath));
server.ReceiveBufferSize = 4 << 20;
server.SendBufferSize = 4 << 20;
using var log = new StreamWriter(new FileStream(logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = false };
using var stopping = new CancellationTokenSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; stopping.Cancel(); });
using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; stopping.Cancel(); });
Console.Out.WriteLine($"READY {socketPath}");
Console.Out.Flush();

var macToClient = new Dictionary<string, string>();
var clients = new HashSet<string>();
var buffer = new byte[65536];
var epoch = DateTime.UnixEpoch;
try
{
    while (!stopping.IsCancellationRequested)
    {
        SocketReceiveFromResult got;
        try
        {
            got = await server.ReceiveFromAsync(buffer, SocketFlags.None, new UnixDomainSocketEndPoint("/"), stopping.Token);
        }
        catch (OperationCanceledException)
        {
            break;
        }
        catch (SocketException)
        {
            continue;
        }
        var client = (got.RemoteEndPoint as UnixDomainSocketEndPoint)?.ToString() ?? "";
        var frame = buffer.AsSpan(0, got.ReceivedBytes);
        if (frame.Length < 14 || client.Length == 0) continue;
        clients.Add(client);
        var dst = Mac(frame[..6]);
        var src = Mac(frame[6..12]);
        macToClient[src] = client;
        var (kind, fromIp, toIp) = Describe(frame);
        log.WriteLine(JsonSerializer.Serialize(new Record((DateTime.UtcNow - epoch).TotalMilliseconds, client, src, dst, kind, fromIp, toIp, frame.Length)));

        var reply = Answer(frame.ToArray(), gatewayIp, gatewayMac);
        // A frame is in the log before anything it caused leaves the server: a test that saw the answer
        // finds the frame (batches are flushed once the socket is drained).
        if (reply is not null || server.Available == 0) log.Flush();
        if (reply is not null)
        {
            TrySend(server, reply, client);
        }
        else if (dst == "ff:ff:ff:ff:ff:ff" || (frame[0] & 1) == 1 || !macToClient.TryGetValue(dst, out var target))
        {
            foreach (var c in clients) if (c != client) TrySend(server, frame.ToArray(), c);
        }
        else if (target != client)
        {
            TrySend(server, frame.ToArray(), target);
        }
    }
}
finally
{
    log.Flush();
    try { File.Delete(socketPath); } catch (IOException) { }
}
return 0;

static void TrySend(Socket server, byte[] frame, string client)
{
    try
    {
        server.SendTo(frame, new UnixDomainSocketEndPoint(client));
    }
    catch (SocketException)
    {
        // The client is gone (its VM was re-plugged or stopped): frames for it are lost, as on a cable.
    }
}

static string Mac(ReadOnlySpan<byte> b) => $"{b[0]:x2}:{b[1]:x2}:{b[2]:x2}:{b[3]:x2}:{b[4]:x2}:{b[5]:x2}";

static (string Kind, string? From, string? To) Describe(ReadOnlySpan<byte> f)
{
    var type = BinaryPrimitives.ReadUInt16BigEndian(f[12..14]);
    if (type == 0x0806 && f.Length >= 42)
    {
        var op = BinaryPrimitives.ReadUInt16BigEndian(f[20..22]);
        return (op == 1 ? "arp-request" : op == 2 ? "arp-reply" : "arp", new IPAddress(f[28..32]).ToString(), new IPAddress(f[38..42]).ToString());
    }
    if (type == 0x0800 && f.Length >= 34)
    {
        var ihl = (f[14] & 0xf) * 4;
        var proto = f[23];
        var from = new IPAddress(f[26..30]).ToString();
        var to = new IPAddress(f[30..34]).ToString();
        if (proto == 1 && f.Length >= 14 + ihl + 1)
        {
            var icmp = f[14 + ihl];
            return (icmp == 8 ? "icmp-echo-request" : icmp == 0 ? "icmp-echo-reply" : "icmp", from, to);
        }
        return (proto == 17 ? "udp" : proto == 6 ? "tcp" : "ipv4", from, to);
    }
    if (type == 0x86dd) return ("ipv6", null, null);
    if (type == 0x8035) return ("rarp", null, null);
    return ($"ethertype-{type:x4}", null, null);
}

// An ARP reply or an ICMP echo reply when the frame asks the gateway; else null.
static byte[]? Answer(byte[] f, byte[] gwIp, byte[] gwMac)
{
    var type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12, 2));
    if (type == 0x0806 && f.Length >= 42 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20, 2)) == 1 && f.AsSpan(38, 4).SequenceEqual(gwIp))
    {
        var r = new byte[42];
        f.AsSpan(6, 6).CopyTo(r.AsSpan(0));          // to the asker
        gwMac.CopyTo(r.AsSpan(6));
        r[12] = 0x08; r[13] = 0x06;
        f.AsSpan(14, 6).CopyTo(r.AsSpan(14));        // htype, ptype, hlen, plen
        r[20] = 0; r[21] = 2;                        // reply
        gwMac.CopyTo(r.AsSpan(22));
        gwIp.CopyTo(r.AsSpan(28));
        f.AsSpan(22, 10).CopyTo(r.AsSpan(32));       // the asker's MAC and IP
        return r;
    }
    if (type == 0x0800 && f.Length >= 34 && f[23] == 1 && f.AsSpan(30, 4).SequenceEqual(gwIp))
    {
        var ihl = (f[14] & 0xf) * 4;
        var total = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16, 2));
        if (f.Length < 14 + total || f[14 + ihl] != 8) return null;
        var r = f.AsSpan(0, 14 + total).ToArray();
        f.AsSpan(6, 6).CopyTo(r.AsSpan(0));
        gwMac.CopyTo(r.AsSpan(6));
        f.AsSpan(30, 4).CopyTo(r.AsSpan(26));        // swap IPs
        f.AsSpan(26, 4).CopyTo(r.AsSpan(30));
        r[22] = 64;                                  // TTL
        r[24] = 0; r[25] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(r.AsSpan(24), Checksum(r.AsSpan(14, ihl)));
        var icmp = r.AsSpan(14 + ihl, total - ihl);
        icmp[0] = 0;                                 // echo reply
        icmp[2] = 0; icmp[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
        return r;
    }
    return null;
}

static ushort Checksum(ReadOnlySpan<byte> data)
{
    uint sum = 0;
    for (var i = 0; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
    if ((data.Length & 1) == 1) sum += (uint)(data[^1] << 8);
    while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
    return (ushort)~sum;
}

static (string Socket, byte[] Gateway, string Log, byte[] GatewayMac)? ParseArgs(string[] args)
{
    string? socket = null, gateway = null, logFile = null, mac = "02:00:00:00:00:01";
    for (var i = 0; i + 1 < args.Length; i += 2)
    {
        switch (args[i])
        {
            case "--socket": socket = args[i + 1]; break;
            case "--gateway": gateway = args[i + 1]; break;
            case "--log": logFile = args[i + 1]; break;
            case "--gateway-mac": mac = args[i + 1]; break;
            default: return null;
        }
    }
    if (socket is null || gateway is null || logFile is null || !IPAddress.TryParse(gateway, out var ip)) return null;
    return (socket, ip.GetAddressBytes(), logFile, mac.Split(':').Select(h => Convert.ToByte(h, 16)).ToArray());
}

internal sealed record Record(double Ms, string Client, string Src, string Dst, string Kind, string? From, string? To, int Length);
