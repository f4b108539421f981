using System.CommandLine;
using MacVm.Engine.Platform;
using MacVm.Engine.Store;

namespace MacVm.Host;

/// <summary>
/// MacVm.Host: one process per VM. It owns the hypervisor and serves the VM's control socket; it
/// outlives the pwsh session that started it. Started by the engine (HostLauncher), not by people.
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        // As launched by the engine (exactly --vm-dir DIR, and the pid of the QEMU its launcher started):
        // QEMU first, so that it loads a saved state while our own start-up runs. Out of the terminal's
        // session and without the launcher's descriptors before forking, so QEMU inherits neither.
        var launched = args is ["--vm-dir", _] or ["--vm-dir", _, "--hypervisor-pid", _];
        if (launched)
        {
            Posix.DetachFromTerminal();
            Posix.CloseInheritedDescriptors();
            var log = new HostLog();
            int? pid = args.Length == 4 && int.TryParse(args[3], System.Globalization.CultureInfo.InvariantCulture, out var p) ? p : null;
            Engine.Drivers.Qemu.QemuEarlyStart.TryStart(Path.GetFullPath(args[1]), pid, log.Write);
        }
        var vmDir = new Option<DirectoryInfo>("--vm-dir") { Description = "The VM's folder in the store (holds vm.json).", Required = true };
        var foreground = new Option<bool>("--foreground") { Description = "Stay attached to the terminal and log to it (for debugging)." };
        var hypervisorPid = new Option<int?>("--hypervisor-pid") { Description = "The hypervisor process the launcher started for this host to adopt (set by the engine).", Hidden = true };
        var root = new RootCommand("Runs one MacVm virtual machine and serves its control socket.") { vmDir, foreground, hypervisorPid };
        root.SetAction(result =>
        {
            var dir = result.GetValue(vmDir)!;
            if (!File.Exists(Path.Combine(dir.FullName, "vm.json")))
            {
                Console.Error.WriteLine($"'{dir.FullName}' holds no vm.json: not a MacVm VM folder.");
                return 2;
            }
            var paths = new VmPaths(dir.FullName);
            if (!result.GetValue(foreground) && !launched)
            {
                // Survive the terminal that launched us closing, and hold none of the launcher's
                // pipes. (The launcher already pointed our standard streams at /dev/null and the log.)
                Posix.DetachFromTerminal();
                Posix.CloseInheritedDescriptors();
            }
            using var host = new VmHost(paths);
            return host.RunAsync().GetAwaiter().GetResult();
        });
        return root.Parse(args).Invoke();
    }
}
