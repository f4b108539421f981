using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using MacVm.Engine.Platform;

namespace MacVm.Engine.Operations;

/// <summary>
/// Checks network attachments and makes the host's client sockets for datagram test networks. The
/// seed's network server tells VMs apart by the path of their client socket (replies go there) and by
/// MAC, so each VM binds its own path, derived from its client id, and connects it to the server.
/// </summary>
public static partial class NetworkRules
{
    /// <summary>Most characters of a client id.</summary>
    public const int MaxClientIdLength = 48;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    private static partial Regex ClientIdPattern();

    /// <summary>
    /// Checks <paramref name="attachment"/> and returns it with an absolute socket path. Throws
    /// <see cref="ArgumentException"/> (bad value) or <see cref="MacVmException"/> (server missing) naming the value.
    /// </summary>
    public static NetworkAttachment Validate(NetworkAttachment attachment)
    {
        if (attachment.Kind != NetworkKind.Socket)
        {
            if (attachment.SocketPath is not null || attachment.ClientId is not null)
                throw new ArgumentException($"A {attachment.Kind} attachment takes no socket path or client id.", nameof(attachment));
            return attachment;
        }
        if (string.IsNullOrWhiteSpace(attachment.SocketPath))
            throw new ArgumentException("Give the path of the network's datagram socket (-SocketPath).", "SocketPath");
        var path = Path.GetFullPath(attachment.SocketPath);
        var bytes = Encoding.UTF8.GetByteCount(path);
        if (bytes >= Posix.UnixSocketPathLimit)
            throw new ArgumentException(
                $"The socket path '{path}' is {bytes} bytes long; unix socket paths are limited to {Posix.UnixSocketPathLimit - 1} bytes on this OS " +
                $"({(OperatingSystem.IsMacOS() ? "macOS: 104" : "Linux: 108")} including the terminating NUL). Put the server's socket in a shorter folder such as /tmp.", "SocketPath");
        if (attachment.ClientId is { } id) CheckClientId(id);
        CheckServer(path);
        return attachment with { SocketPath = path };
    }

    /// <summary>Throws unless <paramref name="id"/> is a usable client id.</summary>
    public static void CheckClientId(string id)
    {
        if (id.Length > MaxClientIdLength || !ClientIdPattern().IsMatch(id))
            throw new ArgumentException(
                $"The client id '{id}' is not valid: use 1 to {MaxClientIdLength} letters, digits, '.', '_' or '-', starting with a letter or digit (it names the VM's client socket).", "ClientId");
    }

    /// <summary>
    /// Throws unless a datagram server listens at <paramref name="path"/>: the file exists, is a socket,
    /// and a datagram socket can connect to it (a stream socket refuses with EPROTOTYPE).
    /// </summary>
    public static void CheckServer(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new MacVmException(MacVmErrorKind.NotFound, "NetworkNotFound",
                $"There is no network socket at '{path}'. Start the network's datagram server first, or check -SocketPath.", path);
        if (Directory.Exists(path) || !IsSocket(path))
            throw new ArgumentException($"'{path}' is not a socket. Give the path of the network's unix datagram socket.", "SocketPath");
        using var probe = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ProtocolType || ex.NativeErrorCode == 91 /* EPROTOTYPE, Linux */ || ex.NativeErrorCode == 41 /* macOS */)
        {
            throw new ArgumentException($"'{path}' is a unix socket but not a datagram socket (SOCK_DGRAM); the network needs one datagram per Ethernet frame. Give the datagram server's socket.", "SocketPath", ex);
        }
        catch (SocketException ex)
        {
            throw new MacVmException(MacVmErrorKind.NotFound, "NetworkNotFound",
                $"Nothing listens on the network socket '{path}' ({ex.SocketErrorCode}): its server is not running. Start it, or check -SocketPath.", path, ex);
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte[] buffer);

    /// <summary>Whether <paramref name="path"/> is a socket (Linux: statx, whose layout is the same on every architecture; elsewhere assumed).</summary>
    private static bool IsSocket(string path)
    {
        if (!OperatingSystem.IsLinux()) return true;
        var buffer = new byte[256];
        const int AtFdCwd = -100;
        const uint StatxType = 1;
        if (statx(AtFdCwd, path, 0, StatxType, buffer) != 0) return true; // let the connect probe explain
        var mode = BitConverter.ToUInt16(buffer, 28);
        return (mode & 0xF000) == 0xC000;
    }

    /// <summary>The client id of a VM that did not name one: its name and a short piece of its id (unique across stores).</summary>
    public static string DefaultClientId(VmConfiguration config)
    {
        var name = config.Name.Length > 32 ? config.Name[..32] : config.Name;
        return $"{name}-{config.Id.ToString("N")[..8]}";
    }

    /// <summary>
    /// The host's client socket path for <paramref name="clientId"/>: $TMPDIR/macvm-&lt;uid&gt;/net/&lt;id&gt;.sock,
    /// or a hashed name in the same folder when that is too long for the OS's limit.
    /// </summary>
    public static string ClientSocketPath(string clientId)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"macvm-{Posix.EffectiveUserId}", "net");
        var path = Path.Combine(dir, clientId + ".sock");
        if (Encoding.UTF8.GetByteCount(path) < Posix.UnixSocketPathLimit) return path;
        path = Path.Combine(dir, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(clientId)))[..16].ToLowerInvariant() + ".sock");
        if (Encoding.UTF8.GetByteCount(path) < Posix.UnixSocketPathLimit) return path;
        throw new PathTooLongException($"The client socket path '{path}' is longer than the {Posix.UnixSocketPathLimit - 1}-byte limit of unix socket paths. Set TMPDIR to a shorter folder.");
    }

    /// <summary>
    /// Whether a live socket is bound at <paramref name="path"/>. Only "connection refused" means nobody is:
    /// a live client socket connected to its server refuses other senders with EPERM, which counts as bound.
    /// </summary>
    private static bool IsBound(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException ex)
        {
            return ex.SocketErrorCode != SocketError.ConnectionRefused;
        }
    }

    /// <summary>
    /// Deletes the client socket a VM's host left behind when it was killed (nobody is bound to it any
    /// more); a socket still in use is left alone.
    /// </summary>
    public static void RemoveStaleClientSocket(VmConfiguration config)
    {
        foreach (var id in new[] { DefaultClientId(config), config.Network?.ClientId })
        {
            if (id is null) continue;
            string path;
            try { path = ClientSocketPath(id); }
            catch (PathTooLongException) { continue; }
            if (!File.Exists(path) || IsBound(path)) continue;
            try { File.Delete(path); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Binds a datagram socket at <paramref name="clientPath"/> and connects it to the server at
    /// <paramref name="serverPath"/>. A path still bound by a live socket is refused (another VM uses the
    /// client id); a stale file left by a dead host is replaced.
    /// </summary>
    public static Socket ConnectClient(string serverPath, string clientPath)
    {
        var dir = Path.GetDirectoryName(clientPath)!;
        Directory.CreateDirectory(dir);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(Path.GetDirectoryName(dir)!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (File.Exists(clientPath))
        {
            if (IsBound(clientPath))
                throw new MacVmException(MacVmErrorKind.AlreadyExists, "ClientIdInUse",
                    $"The client socket '{clientPath}' is in use by another VM's host: give this VM another -ClientId.", clientPath);
            File.Delete(clientPath);
        }
        var socket = UnixSocket.BindDatagram(clientPath);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(serverPath));
            return socket;
        }
        catch
        {
            socket.Dispose();
            try { File.Delete(clientPath); } catch (IOException) { }
            throw;
        }
    }
}
