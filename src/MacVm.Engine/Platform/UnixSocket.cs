using System.Net.Sockets;

namespace MacVm.Engine;

/// <summary>Unix sockets: connecting to stream sockets another process is about to create, binding datagram ones.</summary>
public static class UnixSocket
{
    /// <summary>
    /// A unix datagram socket bound at <paramref name="path"/> (a stale file there is replaced), with 1 MiB
    /// buffers: room for bursts of Ethernet frames (one datagram each) while a relay switches targets.
    /// </summary>
    public static Socket BindDatagram(string path)
    {
        Store.AtomicFile.TryDelete(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.ReceiveBufferSize = 1 << 20;
            socket.SendBufferSize = 1 << 20;
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Connects to <paramref name="path"/>, retrying every 5 ms while it does not exist or refuses,
    /// until <paramref name="timeout"/>, or until <paramref name="stillWorthWaiting"/> says the
    /// process that should create it is gone.
    /// </summary>
    public static async Task<Socket> ConnectWithRetryAsync(string path, TimeSpan timeout, Func<bool> stillWorthWaiting, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.AddressNotAvailable or SocketError.ConnectionRefused or SocketError.AddressFamilyNotSupported || !File.Exists(path))
            {
                socket.Dispose();
                if (DateTime.UtcNow > deadline)
                    throw new TimeoutException($"Nothing accepted connections on '{path}' within {timeout.TotalSeconds:0.#} s.", ex);
                if (!stillWorthWaiting())
                    throw new IOException($"The process that should listen on '{path}' has exited.", ex);
                await Task.Delay(5, ct).ConfigureAwait(false);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }
}
