using System.Runtime.InteropServices;
using MacVm.Engine.Operations;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>
/// Loads Virtualization.framework (or, for tests on Linux, the fake named by $MACVM_VZ_FRAMEWORK), the
/// Objective-C runtime and the blocks runtime the framework itself uses, once per process.
/// </summary>
internal static class AppleFramework
{
    /// <summary>The environment variable naming a fake framework (tests on Linux; also honoured on macOS).</summary>
    public const string FrameworkVariable = "MACVM_VZ_FRAMEWORK";

    /// <summary>Apple's framework binary.</summary>
    public const string ApplePath = "/System/Library/Frameworks/Virtualization.framework/Virtualization";

    private static readonly object s_gate = new();
    private static string? s_loadedPath;

    /// <summary>The framework binary that is loaded, or null.</summary>
    public static string? LoadedPath => s_loadedPath;

    /// <summary>Where the framework is looked for on this machine, or null when there is none to use.</summary>
    public static string? ConfiguredPath()
    {
        var fake = Environment.GetEnvironmentVariable(FrameworkVariable);
        if (!string.IsNullOrEmpty(fake)) return fake;
        return OperatingSystem.IsMacOS() ? ApplePath : null;
    }

    /// <summary>Loads and binds everything; throws a NotInstalled <see cref="MacVmException"/> saying why not.</summary>
    public static void EnsureLoaded()
    {
        lock (s_gate)
        {
            if (s_loadedPath is not null) return;
            var path = ConfiguredPath() ?? throw new MacVmException(MacVmErrorKind.NotInstalled, "DriverUnavailable",
                "The Apple driver needs macOS (Virtualization.framework). On this OS use -Driver Qemu. " +
                $"(Tests run it against the fake framework: set ${FrameworkVariable} to tests/fakes/Virtualization's libVirtualization.so.)");
            if (!File.Exists(path))
                throw new MacVmException(MacVmErrorKind.NotInstalled, "DriverUnavailable",
                    $"The Virtualization framework '{path}' does not exist. " +
                    (OperatingSystem.IsMacOS() ? "Virtualization.framework ships with macOS 11 and later." : $"Build the fake with tests/fakes/Virtualization/build.sh, or unset ${FrameworkVariable}."));
            var apple = OperatingSystem.IsMacOS() && path == ApplePath;
            try
            {
                // The framework first: on Linux it brings its libobjc and libBlocksRuntime, whose
                // already-loaded instances the names below then resolve to.
                NativeLibrary.Load(path);
                var runtime = NativeLibrary.Load(OperatingSystem.IsMacOS() ? "/usr/lib/libobjc.A.dylib" : "libobjc.so.4");
                var blocks = NativeLibrary.Load(OperatingSystem.IsMacOS() ? "/usr/lib/libSystem.B.dylib" : "libBlocksRuntime.so.0");
                ObjC.Bind(runtime, OperatingSystem.IsMacOS());
                NativeBlock.Initialize(NativeLibrary.GetExport(blocks, "_NSConcreteStackBlock"));
                NS.Initialize();
                if (!apple) ObjC.GetClass("VZVirtualMachine"); // a fake that is not one fails here, not later
            }
            catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException or ObjCException)
            {
                throw new MacVmException(MacVmErrorKind.NotInstalled, "DriverUnavailable",
                    $"Could not load the Virtualization framework '{path}': {ex.Message}", null, ex);
            }
            s_loadedPath = path;
        }
    }
}
