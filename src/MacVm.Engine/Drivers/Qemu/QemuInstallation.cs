using System.Runtime.InteropServices;
using MacVm.Engine.Operations;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>Finds QEMU's programs and says how to install them when they are missing.</summary>
public static class QemuInstallation
{
    /// <summary>Overrides the qemu-system executable (a path).</summary>
    public const string SystemVariable = "MACVM_QEMU_SYSTEM";

    /// <summary>The qemu-system program for this machine's architecture.</summary>
    public static string SystemProgramName => RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "qemu-system-aarch64" : "qemu-system-x86_64";

    /// <summary>The full path of qemu-system, or throws NotInstalled with the install command.</summary>
    public static string FindSystem()
    {
        var over = Environment.GetEnvironmentVariable(SystemVariable);
        if (!string.IsNullOrEmpty(over))
        {
            return File.Exists(over) ? over : throw NotInstalled(
                $"${SystemVariable} is set to '{over}', which does not exist. Unset it or point it at a qemu-system executable.");
        }
        return FindOnPath(SystemProgramName) ?? throw NotInstalled(
            $"QEMU is not installed: '{SystemProgramName}' was not found on PATH. {InstallHint}");
    }

    /// <summary>The full path of qemu-img, or throws NotInstalled.</summary>
    public static string FindImg() => FindOnPath("qemu-img") ?? throw NotInstalled(
        $"QEMU's disk tool is not installed: 'qemu-img' was not found on PATH. {InstallHint}");

    /// <summary>How to install QEMU on this OS.</summary>
    public static string InstallHint => OperatingSystem.IsMacOS()
        ? "Install it with 'brew install qemu'."
        : "Install it with 'sudo apt-get install qemu-system-x86 qemu-utils' (Debian/Ubuntu) or your distribution's qemu packages.";

    /// <summary>Finds an executable on PATH.</summary>
    public static string? FindOnPath(string program)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, program);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static MacVmException NotInstalled(string message) => new(MacVmErrorKind.NotInstalled, "QemuNotInstalled", message);
}
