using MacVm.Engine.Drivers.Qemu;
using MacVm.Engine.Store;
using Xunit;

namespace MacVm.Tests.Unit;

public class QemuCommandLineTests
{
    private static VmConfiguration Config(string? disk = "disk.qcow2", string? extra = null) => new()
    {
        Name = "web1",
        Image = "tiny",
        ImageDigest = "sha256:00",
        CpuCount = 2,
        MemoryMB = 384,
        ExtraKernelArguments = extra,
        Boot = new BootSpec { KernelPath = "/s/k", InitrdPath = "/s/i", KernelCommandLine = "console=ttyS0 quiet", DiskFile = disk, GuestAgent = true },
    };

    private static string Value(IReadOnlyList<string> args, string option, int nth = 0)
    {
        var seen = 0;
        for (var i = 0; i < args.Count - 1; i++)
            if (args[i] == option && seen++ == nth) return args[i + 1];
        throw new Xunit.Sdk.XunitException($"{option} #{nth} not in: {string.Join(' ', args)}");
    }

    [Fact]
    public void PinsTheMachineTypeAndAcceleratorAndSizes()
    {
        var args = QemuCommandLine.Build(Config(), new VmPaths("/s/vms/web1"), "tcg");
        Assert.Equal("pc-i440fx-7.2,accel=tcg,memory-backend=ram0", Value(args, "-machine"));
        Assert.Equal("384", Value(args, "-m"));
        Assert.Equal("2", Value(args, "-smp"));
        Assert.Contains("-nodefaults", args);
        Assert.Contains("-no-reboot", args);
        Assert.DoesNotContain("-cpu", args);
    }

    [Fact]
    public void ARunningGuestsMemoryIsAFileSharedWithTheHost()
    {
        var paths = new VmPaths("/s/vms/web1");
        var args = QemuCommandLine.Build(Config(), paths, "tcg");
        Assert.Equal($"memory-backend-file,id=ram0,size=384M,mem-path={paths.SharedMemoryFile},share=on", Value(args, "-object"));
        Assert.DoesNotContain("-incoming", args);
    }

    [Fact]
    public void ARestoreMapsTheSnapshotsMemoryImagePrivatelyAndWaitsForTheState()
    {
        var restore = new RestoreSpec { Snapshot = "base", StatePath = "/s/snapshots/base/state.bin", MemoryPath = "/s/snapshots/base/memory.bin" };
        var args = QemuCommandLine.Build(Config(), new VmPaths("/s/vms/web1"), "tcg", restore);
        // share=off: the guest's writes go to its own copies of the pages, never into the snapshot.
        Assert.Equal("memory-backend-file,id=ram0,size=384M,mem-path=/s/snapshots/base/memory.bin,share=off", Value(args, "-object"));
        Assert.Equal("defer", Value(args, "-incoming"));
        Assert.True(QemuCommandLine.MapsMemoryImage(restore));
    }

    [Fact]
    public void ARestoreOfAStateWithTheMemoryInsideGetsMemoryOfItsOwn()
    {
        var paths = new VmPaths("/s/vms/web1");
        var restore = new RestoreSpec { Snapshot = "old", StatePath = "/s/snapshots/old/state.bin" };
        var args = QemuCommandLine.Build(Config(), paths, "tcg", restore);
        Assert.Equal($"memory-backend-file,id=ram0,size=384M,mem-path={paths.SharedMemoryFile},share=on", Value(args, "-object"));
        Assert.Equal("defer", Value(args, "-incoming"));
        Assert.False(QemuCommandLine.MapsMemoryImage(restore));
    }

    [Fact]
    public void KvmUsesTheHostCpu()
    {
        var args = QemuCommandLine.Build(Config(), new VmPaths("/s/vms/web1"), "kvm");
        Assert.Equal("host", Value(args, "-cpu"));
    }

    [Fact]
    public void SocketsLiveInTheSocketDirectory()
    {
        var args = QemuCommandLine.Build(Config(), new VmPaths("/s/vms/web1"), "tcg");
        Assert.Equal("unix:/s/vms/web1/qmp.sock,server=on,wait=off", Value(args, "-qmp"));
        Assert.Equal("socket,id=serial0,path=/s/vms/web1/serial.sock,server=on,wait=off", Value(args, "-chardev", 0));
        Assert.Equal("socket,id=agent0,path=/s/vms/web1/agent.sock,server=on,wait=off", Value(args, "-chardev", 1));
        Assert.Contains($"virtserialport,id=agentport,bus=vser0.0,chardev=agent0,name={QemuCommandLine.AgentPortName}", args);
    }

    [Fact]
    public void TheDiskIsTheVmsOverlayOnAVirtioBlockDevice()
    {
        var args = QemuCommandLine.Build(Config(), new VmPaths("/s/vms/web1"), "tcg");
        Assert.Equal("driver=file,node-name=file0,filename=/s/vms/web1/disk.qcow2", Value(args, "-blockdev", 0));
        Assert.Equal("driver=qcow2,node-name=disk0,file=file0", Value(args, "-blockdev", 1));
        Assert.Contains("virtio-blk-pci,id=blk0,drive=disk0", args);
    }

    [Fact]
    public void NoDiskMeansNoBlockDevice()
    {
        var args = QemuCommandLine.Build(Config(disk: null), new VmPaths("/s/vms/web1"), "tcg");
        Assert.DoesNotContain("-blockdev", args);
    }

    [Fact]
    public void KernelArgumentsAreTheImagesPlusTheVmsExtras()
    {
        var args = QemuCommandLine.Build(Config(extra: "macvm.test=1"), new VmPaths("/s/vms/web1"), "tcg");
        Assert.Equal("/s/k", Value(args, "-kernel"));
        Assert.Equal("/s/i", Value(args, "-initrd"));
        Assert.Equal("console=ttyS0 quiet macvm.test=1", Value(args, "-append"));
    }

    [Fact]
    public void CommasInPathsAreEscapedForQemu()
    {
        var args = QemuCommandLine.Build(Config(), new VmPaths("/s/a,b/web1"), "tcg");
        Assert.Equal("driver=file,node-name=file0,filename=/s/a,,b/web1/disk.qcow2", Value(args, "-blockdev", 0));
    }
}
