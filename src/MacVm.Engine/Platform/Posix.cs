using System.Runtime.InteropServices;

namespace MacVm.Engine.Platform;

/// <summary>The few libc calls .NET does not wrap. Linux and macOS share these signatures.</summary>
public static partial class Posix
{
    /// <summary>The longest unix socket path including its terminating NUL (sun_path size).</summary>
    public static int UnixSocketPathLimit => OperatingSystem.IsMacOS() ? 104 : 108;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setsid();

    [LibraryImport("libc")]
    private static partial uint geteuid();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int link(string existing, string newPath);

    /// <summary>Makes <paramref name="newPath"/> a second name of <paramref name="existing"/> (same file, O(1)); false when the file system refuses.</summary>
    public static bool TryHardLink(string existing, string newPath) => link(existing, newPath) == 0;

    private const int F_GETFD = 1;
    private const int FD_CLOEXEC = 1;

    /// <summary>
    /// Closes every descriptor above 2 that this process inherited (those without close-on-exec:
    /// the runtime opens all of its own with it). A detached host must not keep its launcher's
    /// pipes open, or whoever reads them (a shell pipeline, a test) never sees the end.
    /// </summary>
    public static void CloseInheritedDescriptors()
    {
        var dir = OperatingSystem.IsMacOS() ? "/dev/fd" : "/proc/self/fd";
        int[] fds;
        try
        {
            fds = Directory.GetFiles(dir).Select(f => int.TryParse(Path.GetFileName(f), out var n) ? n : -1).Where(n => n > 2).ToArray();
        }
        catch (IOException)
        {
            return;
        }
        foreach (var fd in fds)
        {
            var flags = fcntl(fd, F_GETFD, 0);
            if (flags >= 0 && (flags & FD_CLOEXEC) == 0) close(fd);
        }
    }

    /// <summary>The effective user id.</summary>
    public static uint EffectiveUserId => geteuid();

    /// <summary>True if a process with this id exists (it may belong to another user).</summary>
    public static bool ProcessExists(int pid)
    {
        if (pid <= 0) return false;
        if (kill(pid, 0) == 0) return true;
        return Marshal.GetLastPInvokeError() == 1; // EPERM: exists, not ours
    }

    /// <summary>Sends a signal; returns false if the process is gone.</summary>
    public static bool Signal(int pid, int signal) => pid > 0 && kill(pid, signal) == 0;

    /// <summary>SIGKILL.</summary>
    public const int SigKill = 9;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int waitpid(int pid, out int status, int options);

    /// <summary>
    /// Waits for a child of this process that .NET did not start (one forked before this process's exec)
    /// and reaps it. Returns its exit code, or 128 + the signal that killed it, as a shell reports them;
    /// -1 when it is not a child of this process. Blocks: call it on a thread of its own.
    /// </summary>
    public static int WaitForChild(int pid)
    {
        while (true)
        {
            if (waitpid(pid, out var status, 0) == pid)
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
            if (Marshal.GetLastPInvokeError() != 4) return -1; // anything but EINTR
        }
    }

    /// <summary>SIGTERM.</summary>
    public const int SigTerm = 15;

    /// <summary>Starts a new session so the process survives its launching terminal.</summary>
    public static void DetachFromTerminal() => _ = setsid();

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>
    /// On Linux, what identifies this version of a file's content without reading it: its inode, size and
    /// change time (ctime). Every write, truncation, chmod or replacement moves the ctime, which the kernel
    /// sets and no user can set back. Null elsewhere, or when the file cannot be examined.
    /// </summary>
    public static unsafe FileVersion? TryGetFileVersion(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        // struct statx is the same on every Linux architecture: 256 bytes, fixed offsets.
        const int AtFdCwd = -100, StatxBasicStats = 0x7ff;
        var buffer = stackalloc byte[256];
        if (statx(AtFdCwd, path, 0, StatxBasicStats, buffer) != 0) return null;
        var inode = *(ulong*)(buffer + 32);
        var size = *(long*)(buffer + 40);
        var ctime = *(long*)(buffer + 96) * 1_000_000_000L + *(uint*)(buffer + 104);
        var mtime = *(long*)(buffer + 112) * 1_000_000_000L + *(uint*)(buffer + 120);
        return new FileVersion(inode, size, ctime, mtime);
    }

    /// <summary>
    /// On Linux, the command line of a process (arguments joined by spaces), or null if it is gone.
    /// Used to tell our own host processes from a reused pid.
    /// </summary>
    public static string? ProcessCommandLine(int pid)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var raw = File.ReadAllBytes($"/proc/{pid}/cmdline");
            return System.Text.Encoding.UTF8.GetString(raw).Replace('\0', ' ').TrimEnd();
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}

/// <summary>One version of a file's content, as the file system identifies it (see <see cref="Posix.TryGetFileVersion"/>).</summary>
/// <param name="Inode">The inode number.</param>
/// <param name="Size">The size in bytes.</param>
/// <param name="ChangeTimeNs">The status change time (ctime), in nanoseconds since 1970.</param>
/// <param name="ModifyTimeNs">The modification time (mtime), in nanoseconds since 1970.</param>
public readonly record struct FileVersion(ulong Inode, long Size, long ChangeTimeNs, long ModifyTimeNs);
