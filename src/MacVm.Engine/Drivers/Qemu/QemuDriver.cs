using System.Diagnostics;
using MacVm.Engine.Operations;
using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>The QEMU driver: Linux guests in a QEMU child process of the host, driven over QMP.</summary>
public sealed class QemuDriver : IVmDriver
{
    /// <summary>The one instance (the driver holds no state).</summary>
    public static readonly QemuDriver Instance = new();

    private QemuDriver() { }

    /// <inheritdoc/>
    public VmDriverKind Kind => VmDriverKind.Qemu;

    /// <inheritdoc/>
    public void CheckAvailable(VmAccelerator accelerator)
    {
        QemuInstallation.FindSystem();
        QemuInstallation.FindImg();
        ResolveAccelerator(accelerator);
    }

    /// <summary>
    /// Turns the requested accelerator into QEMU's name, or throws when it cannot work here.
    /// Auto means TCG on Linux unless $MACVM_AUTO_ACCEL says otherwise: KVM that exists but hangs
    /// (as in nested virtual machines) is worse than slow, and the boot watchdog names the fix.
    /// </summary>
    public static string ResolveAccelerator(VmAccelerator requested)
    {
        switch (requested)
        {
            case VmAccelerator.Tcg:
                return "tcg";
            case VmAccelerator.Kvm:
                if (!OperatingSystem.IsLinux())
                    throw Unusable("KVM exists only on Linux. Use -Accelerator Hvf on macOS, or Tcg.");
                if (!File.Exists("/dev/kvm"))
                    throw Unusable("KVM is not available: /dev/kvm does not exist (load the kvm module, or enable nested virtualization). Use -Accelerator Tcg.");
                if (!CanOpenReadWrite("/dev/kvm"))
                    throw Unusable("KVM is not usable: /dev/kvm cannot be opened for reading and writing by this user. Add the user to the 'kvm' group, or use -Accelerator Tcg.");
                return "kvm";
            case VmAccelerator.Hvf:
                if (!OperatingSystem.IsMacOS())
                    throw Unusable("HVF (Hypervisor.framework) exists only on macOS. Use -Accelerator Tcg or Kvm on Linux.");
                return "hvf";
            default:
                if (OperatingSystem.IsMacOS()) return "hvf";
                var auto = Environment.GetEnvironmentVariable("MACVM_AUTO_ACCEL");
                return string.Equals(auto, "kvm", StringComparison.OrdinalIgnoreCase) ? ResolveAccelerator(VmAccelerator.Kvm) : "tcg";
        }
    }

    /// <summary>A sentence suggesting TCG when a hardware accelerator was in use, else empty.</summary>
    public static string AcceleratorHint(string? accelerator) => accelerator is null or "tcg" ? "" :
        $" The accelerator '{accelerator}' may not work on this machine (it can fail or hang in nested virtual machines): try -Accelerator Tcg.";

    private static bool CanOpenReadWrite(string path)
    {
        try
        {
            using var _ = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static MacVmException Unusable(string message) => new(MacVmErrorKind.NotInstalled, "AcceleratorUnavailable", message);

    /// <inheritdoc/>
    public async Task CloneDiskAsync(string source, string sourceFormat, string target, CancellationToken ct)
    {
        // A qcow2 overlay backed by the image: O(1) in time and space whatever the image's size.
        var psi = new ProcessStartInfo(QemuInstallation.FindImg())
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "create", "-q", "-f", "qcow2", "-b", source, "-F", sourceFormat, target })
            psi.ArgumentList.Add(arg);
        using var p = Process.Start(psi) ?? throw new IOException("qemu-img did not start.");
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
            throw new IOException($"qemu-img could not create the disk overlay '{target}': {(await stderr.ConfigureAwait(false)).Trim()}");
    }

    /// <summary>
    /// Leaves QEMU's command line (and, for a restore, the state to load) for the host, and returns the
    /// command that starts that QEMU from the launcher, before the host's runtime starts: in a session of
    /// its own (a terminal's Ctrl+C must not reach it) and dying with its parent, which becomes the host
    /// (<see cref="QemuEarlyStart"/>). Null when setsid or setpriv is missing: the host then starts QEMU.
    /// </summary>
    public IReadOnlyList<string>? PrepareLaunch(VmConfiguration configuration, VmPaths paths)
    {
        var executable = QemuInstallation.FindSystem();
        var arguments = QemuCommandLine.Build(configuration, paths, ResolveAccelerator(configuration.Accelerator), configuration.Restore);
        // QEMU binds its sockets there (a short runtime folder when the VM folder is too deep for them).
        VmStore.CreatePrivateDirectory(paths.SocketDirectory);
        QemuVirtualMachine.PrepareFiles(paths);
        QemuEarlyStart.WritePlan(paths, executable, arguments, configuration.Restore);
        if (!OperatingSystem.IsLinux() || QemuInstallation.FindOnPath("setsid") is not { } setsid || QemuInstallation.FindOnPath("setpriv") is not { } setpriv)
            return null;
        return [setsid, setpriv, "--pdeathsig", "KILL", "--", executable, .. arguments];
    }

    /// <inheritdoc/>
    public IVirtualMachine Create(VmConfiguration configuration, VmPaths paths, IVmEventSink events) =>
        new QemuVirtualMachine(configuration, paths, events);
}
