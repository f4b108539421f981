using System.Runtime.InteropServices;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>libc calls the Apple driver needs (same signatures on Linux and macOS).</summary>
internal static partial class Libc
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int dup(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int pipe(int* fds);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int shutdown(int fd, int how);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int socketpair(int domain, int type, int protocol, int* fds);

    [LibraryImport("libc", EntryPoint = "clonefile", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int clonefile(string source, string destination, uint flags);

    /// <summary>A second descriptor for the same open file or socket; throws on failure.</summary>
    public static int Dup(int fd)
    {
        var copy = dup(fd);
        return copy >= 0 ? copy : throw new IOException($"dup({fd}) failed: errno {Marshal.GetLastPInvokeError()}.");
    }

    /// <summary>Closes a descriptor (errors ignored: there is nothing to do about them).</summary>
    public static void Close(int fd)
    {
        if (fd >= 0) close(fd);
    }

    /// <summary>A pipe: (read end, write end).</summary>
    public static unsafe (int Read, int Write) Pipe()
    {
        var fds = stackalloc int[2];
        return pipe(fds) == 0 ? (fds[0], fds[1]) : throw new IOException($"pipe() failed: errno {Marshal.GetLastPInvokeError()}.");
    }

    /// <summary>
    /// Two connected unix datagram sockets (one datagram is one Ethernet frame): the host keeps one, the
    /// framework's VZFileHandleNetworkDeviceAttachment gets the other.
    /// </summary>
    public static unsafe (System.Net.Sockets.Socket Host, System.Net.Sockets.Socket Guest) DatagramSocketPair()
    {
        const int AF_UNIX = 1, SOCK_DGRAM = 2;
        var fds = stackalloc int[2];
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, fds) != 0)
            throw new IOException($"socketpair() failed: errno {Marshal.GetLastPInvokeError()}.");
        return (new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(fds[0], ownsHandle: true)),
            new System.Net.Sockets.Socket(new System.Net.Sockets.SafeSocketHandle(fds[1], ownsHandle: true)));
    }

    /// <summary>Shuts a socket down both ways, which wakes a thread blocked reading it.</summary>
    public static void ShutdownBoth(int fd) => shutdown(fd, 2);

    /// <summary>
    /// Makes <paramref name="destination"/> a copy of <paramref name="source"/>: an APFS clone (O(1), copy on
    /// write) on macOS, a plain copy elsewhere (only the tests run there).
    /// </summary>
    public static void CloneFile(string source, string destination)
    {
        if (OperatingSystem.IsMacOS())
        {
            if (clonefile(source, destination, 0) == 0) return;
            var errno = Marshal.GetLastPInvokeError();
            const int ENOTSUP = 45, EXDEV = 18;
            if (errno != ENOTSUP && errno != EXDEV)
                throw new IOException($"Could not clone '{source}' to '{destination}': errno {errno}.");
        }
        File.Copy(source, destination);
    }
}
