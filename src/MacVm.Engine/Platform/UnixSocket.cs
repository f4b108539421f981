using System.Net.Sockets;

namespace MacVm.Engine;

/// <summary>Connecting to unix stream sockets that another process is about to create.</summary>
public static class UnixSocket
{
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
