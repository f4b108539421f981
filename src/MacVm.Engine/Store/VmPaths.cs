using System.Security.Cryptography;
using System.Text;
using MacVm.Engine.Platform;

namespace MacVm.Engine.Store;

/// <summary>
/// Where one VM's files live. The folder holds the manifest, disk, logs and status; the unix sockets
/// live in the same folder when the path fits the OS's socket path limit, else in a short per-user
/// runtime folder derived from the VM folder (so the host and every client agree on it).
/// </summary>
public sealed class VmPaths
{
    /// <summary>The longest socket file name used inside <see cref="SocketDirectory"/>.</summary>
    public const string LongestSocketName = "control.sock";

    /// <summary>Computes the paths of the VM in <paramref name="directory"/>.</summary>
    public VmPaths(string directory)
    {
        Directory = System.IO.Path.GetFullPath(directory);
        SocketDirectory = ChooseSocketDirectory(Directory);
    }

    /// <summary>The VM's folder.</summary>
    public string Directory { get; }

    /// <summary>The folder of the VM's unix sockets.</summary>
    public string SocketDirectory { get; }

    /// <summary>True when sockets live outside the VM folder because its path is too long.</summary>
    public bool UsesRuntimeSocketDirectory => SocketDirectory != Directory;

    /// <summary>vm.json.</summary>
    public string Manifest => Combine(Directory, "vm.json");
    /// <summary>status.json, written by the host on every state change.</summary>
    public string Status => Combine(Directory, "status.json");
    /// <summary>The host's log.</summary>
    public string HostLog => Combine(Directory, "host.log");
    /// <summary>Everything the guest printed on its serial console.</summary>
    public string ConsoleLog => Combine(Directory, "console.log");
    /// <summary>What QEMU printed, when the launcher started it (the host reads it when QEMU exits).</summary>
    public string QemuLog => Combine(Directory, "qemu.log");
    /// <summary>The host's pid.</summary>
    public string HostPid => Combine(Directory, "host.pid");
    /// <summary>The host's JSON-RPC control socket.</summary>
    public string ControlSocket => Combine(SocketDirectory, "control.sock");
    /// <summary>QEMU's QMP socket.</summary>
    public string QmpSocket => Combine(SocketDirectory, "qmp.sock");
    /// <summary>QEMU's serial console socket.</summary>
    public string SerialSocket => Combine(SocketDirectory, "serial.sock");
    /// <summary>QEMU's virtio-serial socket for the guest agent.</summary>
    public string AgentSocket => Combine(SocketDirectory, "agent.sock");
    /// <summary>Where the host receives the machine state from QEMU during a save.</summary>
    public string SaveSocket => Combine(SocketDirectory, "save.sock");

    /// <summary>The screenshot endpoint's token (0600; a new one at each start of a VM with an endpoint).</summary>
    public string ScreenshotToken => Combine(Directory, "screenshot.token");

    /// <summary>A file name for one QEMU screendump (read and deleted at once).</summary>
    public string NewScreendumpFile() => Combine(Directory, $".screendump-{Guid.NewGuid():N}.png");

    /// <summary>The NIC's datagram socket, bound by QEMU (one datagram per Ethernet frame).</summary>
    public string NicSocket => Combine(SocketDirectory, "nic-q.sock");
    /// <summary>The host's end of the NIC: the relay reads the guest's frames here and writes frames for it.</summary>
    public string NicHostSocket => Combine(SocketDirectory, "nic-h.sock");
    /// <summary>QEMU's NAT (user networking behind a hub) as a datagram socket, bound by QEMU.</summary>
    public string NatSocket => Combine(SocketDirectory, "nat-q.sock");
    /// <summary>The host's end of QEMU's NAT, which the relay uses while the VM is attached to NAT.</summary>
    public string NatHostSocket => Combine(SocketDirectory, "nat-h.sock");
    /// <summary>QEMU's virtio-serial socket for the guest IP channel.</summary>
    public string GuestIpSocket => Combine(SocketDirectory, "ip.sock");

    /// <summary>
    /// The running guest's memory as a file QEMU shares with the host, so that a save copies it into the
    /// snapshot as a flat image that restores map. In /dev/shm when there is one (memory, never written
    /// back to a disk), else in the VM folder. The host unlinks it as soon as QEMU has it open, so a
    /// killed VM leaves nothing behind; the memory goes when the last of QEMU and the host exits.
    /// </summary>
    public string SharedMemoryFile => _sharedMemoryFile ??= System.IO.Directory.Exists(SharedMemoryRoot)
        ? Combine(SharedMemoryDirectory, FolderKey(Directory) + ".mem")
        : Combine(Directory, "memory.shm");

    private string? _sharedMemoryFile;

    /// <summary>The per-user folder (0700) that holds <see cref="SharedMemoryFile"/> when it is in /dev/shm.</summary>
    public static string SharedMemoryDirectory => $"{SharedMemoryRoot}/macvm-{Posix.EffectiveUserId}";

    private const string SharedMemoryRoot = "/dev/shm";

    /// <summary>The VM's disk file.</summary>
    public string Disk(string fileName) => Combine(Directory, fileName);

    private static string Combine(string a, string b) => a + "/" + b;

    /// <summary>
    /// The VM folder itself when its socket paths fit; else $TMPDIR/macvm-&lt;uid&gt;/&lt;hash&gt;.
    /// Throws <see cref="PathTooLongException"/> naming the limit when even that does not fit.
    /// </summary>
    public static string ChooseSocketDirectory(string vmDirectory)
    {
        if (Fits(vmDirectory)) return vmDirectory;
        var runtime = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"macvm-{Posix.EffectiveUserId}", FolderKey(vmDirectory));
        if (Fits(runtime)) return runtime;
        throw new PathTooLongException(
            $"The socket path '{runtime}/{LongestSocketName}' is longer than the {Posix.UnixSocketPathLimit - 1}-byte limit of unix socket paths on this OS, " +
            $"and so is the one in the VM folder '{vmDirectory}'. Set $env:MACVM_HOME (or TMPDIR) to a shorter folder.");
    }

    /// <summary>A short name derived from a VM folder's path, unique in practice.</summary>
    private static string FolderKey(string vmDirectory) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(vmDirectory)))[..16].ToLowerInvariant();

    private static bool Fits(string dir) =>
        Encoding.UTF8.GetByteCount(dir) + 1 + LongestSocketName.Length < Posix.UnixSocketPathLimit;
}
