using System.Runtime.InteropServices;
using MacVm.Engine.Drivers;
using MacVm.Engine.Drivers.Apple;
using MacVm.Engine.Drivers.Apple.Interop;
using MacVm.Engine.Store;
using Xunit;

namespace MacVm.Tests.Unit.Apple;

/// <summary>The Apple-driver tests share the fake framework's global logs: they run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FakeVirtualizationTests
{
    public const string Name = "FakeVirtualization";
}

/// <summary>
/// The fake Virtualization framework (tests/fakes/Virtualization), built by build.ps1 into
/// &lt;out&gt;/fake-vz and named by $MACVM_VZ_FRAMEWORK. Missing, the tests FAIL with how to build it:
/// a driver test that silently skips proves nothing.
/// </summary>
internal static unsafe class FakeVz
{
    private static readonly object s_gate = new();
    private static nint s_lib;
    private static delegate* unmanaged<byte*> s_callLog, s_eventLog;
    private static delegate* unmanaged<void> s_reset;
    private static delegate* unmanaged<byte*, long, void> s_failNext;
    private static delegate* unmanaged<int, void> s_setDelay, s_requireAttachment, s_honorsStop;
    private static delegate* unmanaged<int, int> s_waitIdle;
    private static delegate* unmanaged<byte*, long> s_liveObjects;
    private static delegate* unmanaged<nint, uint, uint, int> s_guestConnect;
    private static delegate* unmanaged<nint, uint, int, void> s_guestListen;
    private static delegate* unmanaged<nint, uint, int> s_guestAccept;
    private static delegate* unmanaged<nint, void> s_guestStop;
    private static delegate* unmanaged<nint, long, void> s_guestError;
    private static delegate* unmanaged<nint, uint, long, void> s_disconnect;

    /// <summary>Loads the fake (once) and resets its logs and knobs.</summary>
    public static void Reset()
    {
        lock (s_gate)
        {
            if (s_lib == 0) Load();
        }
        s_waitIdle(5000);
        s_reset();
    }

    private static void Load()
    {
        var path = Environment.GetEnvironmentVariable(AppleFramework.FrameworkVariable);
        Assert.False(string.IsNullOrEmpty(path),
            $"${AppleFramework.FrameworkVariable} is not set: the Apple driver tests need the fake framework. Run ./build.ps1 -Task Test (it builds it), " +
            "or build it with tests/fakes/Virtualization/build.sh out/fake-vz and set MACVM_VZ_FRAMEWORK=out/fake-vz/libVirtualization.so.");
        Assert.True(File.Exists(path), $"The fake framework '{path}' ($MACVM_VZ_FRAMEWORK) does not exist. Build it with tests/fakes/Virtualization/build.sh.");
        AppleFramework.EnsureLoaded();
        s_lib = NativeLibrary.Load(path);
        nint F(string name) => NativeLibrary.GetExport(s_lib, name);
        s_callLog = (delegate* unmanaged<byte*>)F("VZFakeCallLog");
        s_eventLog = (delegate* unmanaged<byte*>)F("VZFakeEventLog");
        s_reset = (delegate* unmanaged<void>)F("VZFakeReset");
        s_failNext = (delegate* unmanaged<byte*, long, void>)F("VZFakeFailNext");
        s_setDelay = (delegate* unmanaged<int, void>)F("VZFakeSetDelayMs");
        s_requireAttachment = (delegate* unmanaged<int, void>)F("VZFakeSetRequireNetworkAttachment");
        s_honorsStop = (delegate* unmanaged<int, void>)F("VZFakeSetGuestHonorsStopRequest");
        s_waitIdle = (delegate* unmanaged<int, int>)F("VZFakeWaitIdle");
        s_liveObjects = (delegate* unmanaged<byte*, long>)F("VZFakeLiveObjects");
        s_guestConnect = (delegate* unmanaged<nint, uint, uint, int>)F("VZFakeGuestConnect");
        s_guestListen = (delegate* unmanaged<nint, uint, int, void>)F("VZFakeGuestListen");
        s_guestAccept = (delegate* unmanaged<nint, uint, int>)F("VZFakeGuestAccept");
        s_guestStop = (delegate* unmanaged<nint, void>)F("VZFakeGuestStop");
        s_guestError = (delegate* unmanaged<nint, long, void>)F("VZFakeGuestError");
        s_disconnect = (delegate* unmanaged<nint, uint, long, void>)F("VZFakeDisconnectNetwork");
    }

    /// <summary>The calls into the Apple API since the last reset, one "-[Class selector]" per line.</summary>
    public static string[] Calls() => (Marshal.PtrToStringUTF8((nint)s_callLog()) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The calls since the last <see cref="ClearCalls"/>.</summary>
    public static string[] CallsSince(int mark) => Calls().Skip(mark).ToArray();

    public static string Events() => Marshal.PtrToStringUTF8((nint)s_eventLog()) ?? "";

    public static void FailNext(string selector, long code)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(selector + "\0");
        fixed (byte* p = bytes) s_failNext(p, code);
    }

    public static void SetDelayMs(int ms) => s_setDelay(ms);
    public static void RequireNetworkAttachment(bool require) => s_requireAttachment(require ? 1 : 0);
    public static void GuestHonorsStop(bool honors) => s_honorsStop(honors ? 1 : 0);
    public static bool WaitIdle(int ms = 5000) => s_waitIdle(ms) != 0;
    public static long LiveObjects() => s_liveObjects(null);
    public static int GuestConnect(nint vm, uint port, uint guestPort) => s_guestConnect(vm, port, guestPort);
    public static void GuestListen(nint vm, uint port) => s_guestListen(vm, port, 1);
    public static int GuestAccept(nint vm, uint port) => s_guestAccept(vm, port);
    public static void GuestStop(nint vm) => s_guestStop(vm);
    public static void GuestError(nint vm, long code) => s_guestError(vm, code);
    public static void Disconnect(nint vm, uint index, long code) => s_disconnect(vm, index, code);
}

/// <summary>What a VM told its host, for assertions.</summary>
internal sealed class RecordingSink : IVmEventSink
{
    private readonly List<string> _log = new();
    private readonly List<string> _console = new();

    public void ConsoleLine(string line)
    {
        lock (_console) _console.Add(line);
    }

    public string[] Console
    {
        get
        {
            lock (_console) return _console.ToArray();
        }
    }

    public void Log(string message)
    {
        lock (_log) _log.Add(message);
    }

    public string Text
    {
        get
        {
            lock (_log) return string.Join("\n", _log);
        }
    }
}

/// <summary>A VM folder with small stand-ins for a guest's files.</summary>
internal sealed class TestVmFolder : IDisposable
{
    public TestVmFolder()
    {
        Directory = Path.Combine(Path.GetTempPath(), "macvm-apple-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(Directory);
        Paths = new VmPaths(Directory);
        File.WriteAllText(Path.Combine(Directory, "vmlinux"), "kernel");
        File.WriteAllText(Path.Combine(Directory, "initrd"), "initrd");
        File.WriteAllText(Path.Combine(Directory, "disk.img"), "disk");
        File.WriteAllText(Path.Combine(Directory, "HardwareModel"), "fake hardware model");
        File.WriteAllBytes(Path.Combine(Directory, "MachineIdentifier"), new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 });
        File.WriteAllText(Path.Combine(Directory, "AuxiliaryStorage"), "nvram");
        System.IO.Directory.CreateDirectory(Path.Combine(Directory, "share"));
    }

    public string Directory { get; }

    public VmPaths Paths { get; }

    public string File_(string name) => Path.Combine(Directory, name);

    public VmConfiguration Linux(string name = "lin") => new()
    {
        Name = name,
        Driver = VmDriverKind.Apple,
        Image = "tiny",
        ImageDigest = "sha256:00",
        MemoryMB = 512,
        MacAddress = "02:00:00:00:00:07",
        Boot = new BootSpec
        {
            KernelPath = File_("vmlinux"),
            InitrdPath = File_("initrd"),
            KernelCommandLine = "console=hvc0",
            DiskFile = "disk.img",
        },
    };

    public VmConfiguration Mac(string name = "mac") => Linux(name) with
    {
        CpuCount = 4,
        MemoryMB = 4096,
        Boot = new BootSpec
        {
            DiskFile = "disk.img",
            MacPlatform = new MacPlatformSpec
            {
                HardwareModelPath = File_("HardwareModel"),
                MachineIdentifierPath = File_("MachineIdentifier"),
                AuxiliaryStorageFile = "AuxiliaryStorage",
            },
        },
    };

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
