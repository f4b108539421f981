namespace MacVm.Engine.HostProtocol;

/// <summary>
/// The JSON-RPC 2.0 methods a host process serves on its control socket (newline-delimited JSON,
/// one message per line). Both sides use these names, so changing one is a protocol change.
/// </summary>
public static class HostMethods
{
    /// <summary>() → <see cref="VmStatus"/>.</summary>
    public const string GetStatus = "vm.getStatus";

    /// <summary>(<see cref="StopRequest"/>) → <see cref="VmStatus"/> once the hypervisor has exited.</summary>
    public const string Stop = "vm.stop";

    /// <summary>() → <see cref="VmStatus"/>: pauses the guest's CPUs.</summary>
    public const string Pause = "vm.pause";

    /// <summary>() → <see cref="VmStatus"/>: resumes the guest's CPUs.</summary>
    public const string Resume = "vm.resume";

    /// <summary>
    /// (timeoutMs) → <see cref="VmStatus"/> as soon as the guest has shown a sign of life, or the VM
    /// has failed or stopped, or the timeout passed: callers wait for a boot without polling.
    /// </summary>
    public const string WaitForBoot = "vm.waitForBoot";

    /// <summary>(<see cref="SaveRequest"/>) → <see cref="SaveResult"/>: saves the machine state and freezes the disk layer.</summary>
    public const string Save = "vm.save";

    /// <summary>(<see cref="NetworkAttachment"/>) → <see cref="VmStatus"/>: re-plugs the NIC (None, Nat, a datagram server) and records it in vm.json.</summary>
    public const string SetNetwork = "vm.setNetwork";

    /// <summary>(<see cref="GuestIpConfiguration"/> or null) → <see cref="VmStatus"/>: the IP configuration served to the guest from now on (null: <c>wait</c>).</summary>
    public const string SetGuestIp = "vm.setGuestIp";

    /// <summary>(script, timeoutMs) → <see cref="GuestCommandResult"/>: runs a shell script in the guest through the agent.</summary>
    public const string RunInGuest = "guest.run";

    /// <summary>(timeoutMs) → <see cref="GuestPingResult"/>: a round trip through the guest agent.</summary>
    public const string PingGuest = "guest.ping";

    /// <summary>(<see cref="ScreenshotRequest"/>) → <see cref="MacVmScreenshot"/> with its bytes: captures and encodes the display (running or paused VM).</summary>
    public const string Screenshot = "vm.screenshot";
}

/// <summary>What picture to take.</summary>
public sealed record ScreenshotRequest
{
    /// <summary>The whole display at its own size; else a thumbnail 800 px wide.</summary>
    public bool Full { get; init; }

    /// <summary>The encoding.</summary>
    public ScreenshotFormat Format { get; init; } = ScreenshotFormat.Jpeg;

    /// <summary>JPEG quality 1–100; null for the default (60 thumbnail, 85 full).</summary>
    public int? Quality { get; init; }
}

/// <summary>How to stop a VM.</summary>
public sealed record StopRequest
{
    /// <summary>Kill the hypervisor at once instead of asking the guest to shut down.</summary>
    public bool Force { get; init; }

    /// <summary>How long a graceful stop may take before the host kills the hypervisor.</summary>
    public int TimeoutMs { get; init; } = 30_000;
}

/// <summary>What to save where.</summary>
public sealed record SaveRequest
{
    /// <summary>Where the machine state goes.</summary>
    public required string StateFile { get; init; }

    /// <summary>The new active disk layer (a file in the VM folder that does not exist yet).</summary>
    public required string NewActiveDisk { get; init; }

    /// <summary>Leave the guest paused after the save (the caller stops the VM next).</summary>
    public bool LeavePaused { get; init; }
}

/// <summary>What a save produced.</summary>
public sealed record SaveResult
{
    /// <summary>The disk layer that now belongs to the saved state (read-only from now on).</summary>
    public required string FrozenDisk { get; init; }

    /// <summary>How long the guest was paused, in milliseconds.</summary>
    public double PausedMs { get; init; }

    /// <summary>The files the host wrote beside the state file (the state file first), with their checksums.</summary>
    public required IReadOnlyList<SnapshotFile> Files { get; init; }
}

/// <summary>What a script run in the guest did.</summary>
public sealed record GuestCommandResult
{
    /// <summary>The script's exit status.</summary>
    public int ExitCode { get; init; }

    /// <summary>Its standard output and error, together.</summary>
    public string Output { get; init; } = "";
}

/// <summary>The answer to a guest ping.</summary>
public sealed record GuestPingResult
{
    /// <summary>The round trip host → agent → host.</summary>
    public double RoundTripMs { get; init; }

    /// <summary>The token the agent echoed.</summary>
    public required string Token { get; init; }
}

/// <summary>
/// JSON-RPC error codes the host uses (server-defined range) so clients can tell problems apart
/// without parsing messages. Each maps to the Problem part of a cmdlet's error id.
/// </summary>
public static class HostErrorCodes
{
    /// <summary>The VM's state does not allow the request.</summary>
    public const int InvalidState = -32010;
    /// <summary>The image has no guest agent.</summary>
    public const int NoGuestAgent = -32011;
    /// <summary>The guest agent did not answer in time.</summary>
    public const int GuestNotAnswering = -32012;

    /// <summary>A save failed (the VM goes on running).</summary>
    public const int SaveFailed = -32013;

    /// <summary>The display could not be captured or encoded.</summary>
    public const int CaptureFailed = -32014;

    /// <summary>The NIC could not be plugged in where asked (the VM stays where it was).</summary>
    public const int NetworkFailed = -32015;

    /// <summary>The Problem name of a code ("HostFailed" for anything else).</summary>
    public static string Problem(int code) => code switch
    {
        InvalidState => "InvalidState",
        NoGuestAgent => "NoGuestAgent",
        GuestNotAnswering => "GuestNotAnswering",
        SaveFailed => "SaveFailed",
        CaptureFailed => "CaptureFailed",
        NetworkFailed => "NetworkFailed",
        _ => "HostFailed",
    };
}
