using System.Diagnostics;
using System.Runtime.InteropServices;
using MacVm.Engine.HostProtocol;
using MacVm.Engine.Platform;
using MacVm.Engine.Store;

namespace MacVm.Engine.Operations;

/// <summary>Starts a VM's host process, detached, and waits until it answers on its control socket.</summary>
public static class HostLauncher
{
    /// <summary>Overrides where the host executable is (a path).</summary>
    public const string HostPathVariable = "MACVM_HOST_PATH";

    /// <summary>How long a host has to open its control socket.</summary>
    public static readonly TimeSpan ControlSocketTimeout = TimeSpan.FromSeconds(20);

    /// <summary>The host executable: $MACVM_HOST_PATH, else MacVm.Host beside this assembly.</summary>
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("SingleFile", "IL3000",
        Justification = "Runs in pwsh, which loads the engine from its file in lib/; the host, a single native file, never launches hosts.")]
    public static string FindHostExecutable()
    {
        var over = Environment.GetEnvironmentVariable(HostPathVariable);
        if (!string.IsNullOrEmpty(over)) return over;
        var dir = Path.GetDirectoryName(typeof(HostLauncher).Assembly.Location) ?? AppContext.BaseDirectory;
        var exe = Path.Combine(dir, OperatingSystem.IsWindows() ? "MacVm.Host.exe" : "MacVm.Host");
        return File.Exists(exe) ? exe : throw new MacVmException(MacVmErrorKind.NotInstalled, "HostNotFound",
            $"The host executable '{exe}' is missing; the module is incomplete. Rebuild it with ./build.ps1, or set ${HostPathVariable}.");
    }

    /// <summary>
    /// Launches the host for the VM in <paramref name="paths"/> and returns a client connected to it.
    /// A host that dies first becomes a HostFailed error quoting the end of its log.
    /// </summary>
    /// <param name="paths">The VM.</param>
    /// <param name="hypervisor">
    /// A command to start just before the host, as a child of the launcher that then becomes the host
    /// (<c>exec</c>), so that the hypervisor starts while the host's runtime does; the host gets its pid
    /// (<c>--hypervisor-pid</c>) and its output goes to qemu.log. Null: the host starts the hypervisor.
    /// </param>
    /// <param name="ct">Cancels.</param>
    public static async Task<HostClient> LaunchAsync(VmPaths paths, IReadOnlyList<string>? hypervisor, CancellationToken ct)
    {
        var exe = FindHostExecutable();
        AtomicFile.TryDelete(paths.ControlSocket);
        // The last run's status must not be mistaken for this run's.
        AtomicFile.TryDelete(paths.Status);
        // Through sh, so that the host's standard streams are /dev/null and its log before the .NET
        // runtime starts: the runtime keeps copies of them, and a copy of the caller's stdout pipe
        // would keep whoever reads that pipe (a shell pipeline, a test) waiting for ever.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        var launch = hypervisor is { Count: > 0 }
            ? new[] { "-c", "h=$0 d=$1 l=$2 q=$3; shift 4; \"$@\" </dev/null >\"$q\" 2>&1 & exec \"$h\" --vm-dir \"$d\" --hypervisor-pid $! </dev/null >>\"$l\" 2>&1", exe, paths.Directory, paths.HostLog, paths.QemuLog }.Concat(hypervisor)
            : new[] { "-c", "exec \"$0\" --vm-dir \"$1\" </dev/null >>\"$2\" 2>&1", exe, paths.Directory, paths.HostLog };
        foreach (var arg in launch) psi.ArgumentList.Add(arg);
        // The module's host is native and needs no runtime; a framework-dependent build of it (the unit
        // tests', $MACVM_HOST_PATH) runs on the runtime this process runs on, wherever that is installed.
        if (DotnetRoot() is { } root) psi.Environment["DOTNET_ROOT"] = root;
        // A small first-generation budget (4 MiB): a host idles between small requests, and with the
        // default budget each control call grew it.
        if (!psi.Environment.ContainsKey("DOTNET_GCgen0size")) psi.Environment["DOTNET_GCgen0size"] = "0x400000";
        // The host must not inherit the caller's store override semantics or tracing by accident.
        psi.Environment.Remove("DOTNET_STARTUP_HOOKS");

        using var process = Process.Start(psi) ?? throw new MacVmException(MacVmErrorKind.HostFailed, "HostFailed", $"The host '{exe}' did not start.");
        var pid = process.Id;
        var deadline = DateTime.UtcNow + ControlSocketTimeout;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var client = await HostClient.TryConnectAsync(paths.ControlSocket, ct).ConfigureAwait(false);
            if (client is not null) return client;
            if (process.HasExited)
            {
                // A host that recorded why it failed (QEMU would not start, say) failed the boot;
                // one that recorded nothing failed itself.
                if (VmStore.ReadStatus(paths) is { State: VmState.Failed, Reason: { } reason })
                    throw new MacVmException(MacVmErrorKind.HostFailed, "BootFailed", $"The VM did not start: {reason} {LogTail(paths)}");
                throw new MacVmException(MacVmErrorKind.HostFailed, "HostFailed",
                    $"The host process (pid {pid}) exited with code {process.ExitCode} while starting. {LogTail(paths)}");
            }
            if (DateTime.UtcNow > deadline)
            {
                Posix.Signal(pid, Posix.SigKill);
                throw new MacVmException(MacVmErrorKind.HostFailed, "HostFailed",
                    $"The host process (pid {pid}) did not open its control socket within {ControlSocketTimeout.TotalSeconds:0} s. {LogTail(paths)}");
            }
            await Task.Delay(5, ct).ConfigureAwait(false);
        }
    }

    /// <summary>"Last lines of host.log: …", for error messages.</summary>
    public static string LogTail(VmPaths paths, int lines = 6)
    {
        try
        {
            if (!File.Exists(paths.HostLog)) return $"The host wrote no log ('{paths.HostLog}' is missing).";
            var tail = File.ReadLines(paths.HostLog).TakeLast(lines).ToList();
            return tail.Count == 0 ? "The host log is empty." : $"Last lines of '{paths.HostLog}':{Environment.NewLine}  " + string.Join(Environment.NewLine + "  ", tail);
        }
        catch (IOException ex)
        {
            return $"The host log could not be read: {ex.Message}";
        }
    }

    private static string? DotnetRoot()
    {
        // .../dotnet/shared/Microsoft.NETCore.App/<version>/ → .../dotnet
        var runtimeDir = RuntimeEnvironment.GetRuntimeDirectory().TrimEnd('/');
        var root = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(runtimeDir)));
        return root is not null && File.Exists(Path.Combine(root, "dotnet")) ? root : Environment.GetEnvironmentVariable("DOTNET_ROOT");
    }
}
