using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers;

/// <summary>
/// A hypervisor binding. The host process asks it for one <see cref="IVirtualMachine"/>; the cmdlet
/// side asks it only to check prerequisites and to clone disks, so errors surface before a host starts.
/// </summary>
public interface IVmDriver
{
    /// <summary>Which driver this is.</summary>
    VmDriverKind Kind { get; }

    /// <summary>Throws a <see cref="Operations.MacVmException"/> (NotInstalled) naming what is missing and how to install it.</summary>
    void CheckAvailable(VmAccelerator accelerator);

    /// <summary>Makes <paramref name="target"/> an O(1) copy-on-write clone of the image disk <paramref name="source"/>.</summary>
    Task CloneDiskAsync(string source, string sourceFormat, string target, CancellationToken ct);

    /// <summary>Prepares (does not start) the VM described by <paramref name="configuration"/>.</summary>
    IVirtualMachine Create(VmConfiguration configuration, VmPaths paths, IVmEventSink events);

    /// <summary>
    /// Called by the engine just before it launches a host for <paramref name="configuration"/>. A driver whose
    /// hypervisor is a process of its own may leave in the VM folder what the host needs to adopt it, and return
    /// the command that starts it: the launcher then starts it before the host's runtime starts, as a child of
    /// what becomes the host (QEMU). Optional; null (the default) means the host starts the hypervisor itself.
    /// </summary>
    IReadOnlyList<string>? PrepareLaunch(VmConfiguration configuration, VmPaths paths) => null;
}

/// <summary>What a running VM tells the host about itself.</summary>
public interface IVmEventSink
{
    /// <summary>One line the guest printed on its console.</summary>
    void ConsoleLine(string line);

    /// <summary>A line for the host log.</summary>
    void Log(string message);
}

/// <summary>One VM inside its host process.</summary>
public interface IVirtualMachine : IAsyncDisposable
{
    /// <summary>The accelerator in use, once started (kvm, tcg, hvf).</summary>
    string? Accelerator { get; }

    /// <summary>The hypervisor's process id when it runs in a child process.</summary>
    int? HypervisorProcessId { get; }

    /// <summary>
    /// Starts the hypervisor and returns once the guest's CPUs run. With <paramref name="restore"/> the
    /// machine state (and memory image, when the snapshot has one) is loaded first; a state that does not
    /// load throws <see cref="RestoreFailedException"/> and leaves the hypervisor stopped.
    /// </summary>
    Task StartAsync(RestoreSpec? restore, CancellationToken ct);

    /// <summary>
    /// Saves the machine: pauses the guest, freezes the current disk layer (new writes go to
    /// <paramref name="newActiveDisk"/>, a new overlay on it) and writes the machine state to
    /// <paramref name="stateFile"/>, and any other file the state needs beside it (QEMU: the memory
    /// image). The guest stays paused.
    /// </summary>
    Task<SavedMachine> SaveAsync(string stateFile, string newActiveDisk, CancellationToken ct);

    /// <summary>Pauses the guest's CPUs.</summary>
    Task PauseAsync(CancellationToken ct);

    /// <summary>Resumes the guest's CPUs.</summary>
    Task ResumeAsync(CancellationToken ct);

    /// <summary>Presses the virtual power button (ACPI); the guest decides what to do.</summary>
    Task RequestShutdownAsync(CancellationToken ct);

    /// <summary>Ends the hypervisor at once.</summary>
    void Kill();

    /// <summary>Completes when the hypervisor has ended, with how it ended.</summary>
    Task<HypervisorExit> Exited { get; }

    /// <summary>Opens the byte stream of the guest agent channel.</summary>
    Task<Stream> ConnectGuestAgentAsync(CancellationToken ct);

    /// <summary>
    /// The host's end of the NIC's frame channel, valid once <see cref="StartAsync"/> returned: a datagram
    /// socket on which every datagram received is one Ethernet frame the guest sent, and every datagram sent
    /// is one frame for the guest (no prefix). The host relays it to the VM's current attachment while the
    /// NIC is on <see cref="NicAttachment.HostRelay"/>. QEMU: a socket the NIC's dgram netdev talks to;
    /// Apple: one end of a socket pair whose other end is the VZFileHandleNetworkDeviceAttachment.
    /// </summary>
    System.Net.Sockets.Socket NicChannel { get; }

    /// <summary>
    /// The hypervisor's NAT as a frame channel like <see cref="NicChannel"/>, when it has one (QEMU: user
    /// networking behind a hub, always present so that saves and restores match); the host then makes NAT
    /// one target of its relay. Null when NAT is an attachment of its own (Apple: <see cref="NicAttachment.Nat"/>).
    /// </summary>
    System.Net.Sockets.Socket? NatChannel { get; }

    /// <summary>
    /// Changes what is behind the VM's one NIC while it runs (called by the host after every start and
    /// restore, and on every re-plug). The guest never sees a device change: the NIC, its MAC and its slot
    /// stay; only the far end of the cable changes.
    /// </summary>
    Task SetNetworkAttachmentAsync(NicAttachment attachment, CancellationToken ct);

    /// <summary>
    /// Serves the guest IP side channel until <paramref name="ct"/> is cancelled or the hypervisor ends
    /// (Apple: vsock port 51011; QEMU: the virtio-serial port org.macvm.ip). For each guest request the driver
    /// writes <see cref="IGuestIpResponder.CurrentReply"/> as one line, and hands every acknowledgement the guest
    /// sends (<c>applied JSON</c>) to <see cref="IGuestIpResponder.Applied"/>. Framing: docs/guest-protocol.md.
    /// </summary>
    Task ServeGuestIpAsync(IGuestIpResponder responder, CancellationToken ct);

    /// <summary>Captures the display as it is now; works on a running or a paused VM.</summary>
    Task<ScreenCapture> CaptureScreenAsync(CancellationToken ct);
}

/// <summary>What is behind the NIC, as the hypervisor sees it.</summary>
public enum NicAttachment
{
    /// <summary>Cable unplugged: the guest sees no carrier and no frame passes (QEMU: link down; Apple: attachment nil).</summary>
    Disconnected,

    /// <summary>The hypervisor's own NAT, for drivers without a <see cref="IVirtualMachine.NatChannel"/> (Apple: VZNATNetworkDeviceAttachment).</summary>
    Nat,

    /// <summary>Link up, frames on <see cref="IVirtualMachine.NicChannel"/>: the host relays them (test networks; NAT on QEMU).</summary>
    HostRelay,
}

/// <summary>The host's side of the guest IP protocol, as a driver's transport sees it.</summary>
public interface IGuestIpResponder
{
    /// <summary>The one line to send now, without its newline: <c>wait</c>, or the IP configuration as JSON.</summary>
    string CurrentReply();

    /// <summary>The guest acknowledged a configuration; <paramref name="acknowledgement"/> is the JSON after <c>applied </c>, without the newline.</summary>
    void Applied(string acknowledgement);
}

/// <summary>One picture of a VM's display.</summary>
/// <param name="Width">Pixels across.</param>
/// <param name="Height">Pixels down.</param>
/// <param name="Format">How <paramref name="Data"/> is encoded.</param>
/// <param name="Data">The picture.</param>
public sealed record ScreenCapture(int Width, int Height, ScreenCaptureFormat Format, byte[] Data);

/// <summary>How a <see cref="ScreenCapture"/> is encoded.</summary>
public enum ScreenCaptureFormat
{
    /// <summary>A PNG file's bytes (QEMU's screendump writes PNG itself).</summary>
    Png,

    /// <summary>Raw pixels, 4 bytes each, blue-green-red-alpha, rows top to bottom with no padding.</summary>
    Bgra32,
}

/// <summary>What <see cref="IVirtualMachine.SaveAsync"/> produced.</summary>
/// <param name="FrozenDisk">The disk layer that now belongs to the saved state.</param>
/// <param name="Files">
/// The files written beside the state file, the state file first, with their sizes and checksums
/// (drivers hash as they write, which saves reading them again).
/// </param>
public sealed record SavedMachine(string FrozenDisk, IReadOnlyList<SnapshotFile> Files);

/// <summary>How a hypervisor ended.</summary>
/// <param name="GuestShutdown">True when the guest powered itself off.</param>
/// <param name="Description">In words, for the status reason and the log.</param>
public sealed record HypervisorExit(bool GuestShutdown, string Description);

/// <summary>A saved machine state could not be loaded.</summary>
public sealed class RestoreFailedException : Exception
{
    /// <summary>Makes the exception.</summary>
    public RestoreFailedException(string message, Exception? inner = null) : base(message, inner) { }
}
