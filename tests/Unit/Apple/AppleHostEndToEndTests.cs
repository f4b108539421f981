using MacVm.Engine.Operations;
using MacVm.Engine.Store;
using Xunit;

namespace MacVm.Tests.Unit.Apple;

/// <summary>
/// The Apple driver behind the real host process: the engine makes, saves, restores and stops VMs
/// whose hosts (MacVm.Host processes, with $MACVM_VZ_FRAMEWORK inherited) run them on the fake framework.
/// </summary>
[Collection(FakeVirtualizationTests.Name)]
[Trait("Category", FakeVirtualizationTests.Name)]
public sealed class AppleHostEndToEndTests : IDisposable
{
    private readonly string _root = Path.Combine("/tmp", "macvm-test-apple-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly string _files;
    private readonly VmStore _store;

    public AppleHostEndToEndTests()
    {
        FakeVz.Reset(); // fails the test with how to build the fake when it is missing
        _store = new VmStore(_root);
        _files = Path.Combine(_root, "files");
        Directory.CreateDirectory(_files);
        File.WriteAllText(Path.Combine(_files, "vmlinux"), "kernel");
        File.WriteAllText(Path.Combine(_files, "initrd"), "initrd");
        using (var disk = File.Create(Path.Combine(_files, "disk.img"))) disk.SetLength(1 << 20);
    }

    public void Dispose()
    {
        var vms = new VmManager(_store);
        foreach (var name in _store.VmNames())
        {
            try
            {
                vms.RemoveAsync(name, force: true, NullReporter.Instance, CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (MacVmException)
            {
            }
        }
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task ALinuxGuestRunsSavesRestoresAndStopsThroughItsHost()
    {
        var ct = CancellationToken.None;
        var images = new ImageLibrary(_store);
        await images.ImportAsync(new ImportImageRequest
        {
            Name = "tiny",
            KernelPath = Path.Combine(_files, "vmlinux"),
            InitrdPath = Path.Combine(_files, "initrd"),
            DiskPath = Path.Combine(_files, "disk.img"),
            KernelCommandLine = "console=hvc0",
        }, NullReporter.Instance, ct);
        var vms = new VmManager(_store);

        var vm = await vms.CreateAsync(new NewVmRequest { Name = "a1", Image = "tiny", Driver = VmDriverKind.Apple, BootTimeoutSeconds = 30 }, NullReporter.Instance, ct);
        Assert.Equal(VmState.Running, vm.State);
        Assert.Equal("hvf", vm.Accelerator);
        Assert.Null(vm.HypervisorProcessId);
        Assert.True(vm.Status.GuestBooted, "the fake guest's console line reached the host");
        Assert.Equal("disk.img", vm.Configuration.Boot.DiskFile);
        Assert.Matches("^02(:[0-9a-f]{2}){5}$", vm.Configuration.MacAddress!);
        Assert.Contains("VZFake guest: booted", await File.ReadAllTextAsync(Path.Combine(vm.Path, "console.log"), ct), StringComparison.Ordinal);

        Assert.Equal(VmState.Paused, (await vms.SuspendAsync("a1", ct)).State);
        Assert.Equal(VmState.Running, (await vms.ResumeAsync("a1", ct)).State);

        var snapshots = new SnapshotManager(_store);
        var snapshot = await snapshots.SaveAsync("a1", "s1", stop: false, NullReporter.Instance, ct);
        Assert.Equal(VmDriverKind.Apple, snapshot.Driver);
        Assert.Equal(VmState.Running, (await vms.GetAsync("a1", ct)).State);
        Assert.StartsWith("VZFakeSavedState 1", await File.ReadAllTextAsync(Path.Combine(snapshot.Path!, "state.bin"), ct), StringComparison.Ordinal);
        Assert.Equal(1 << 20, new FileInfo(Path.Combine(snapshot.Path!, "disk.qcow2")).Length);

        var restored = (await snapshots.RestoreAsync(new RestoreRequest { Snapshot = "s1", Name = "a2" }, NullReporter.Instance, ct)).Single();
        Assert.Equal(VmState.Running, restored.State);
        Assert.Equal("s1", restored.Status.RestoredFrom);
        Assert.Null(restored.Status.RestoreFallbackReason);
        Assert.Equal(vm.Configuration.MacAddress, restored.Configuration.MacAddress);

        // Graceful stop: the power button (requestStopWithError:), the fake guest powers off.
        var stopped = await vms.StopAsync("a2", force: false, TimeSpan.FromSeconds(20), NullReporter.Instance, ct);
        Assert.Equal(VmState.Stopped, stopped.State);
        var killed = await vms.StopAsync("a1", force: true, TimeSpan.Zero, NullReporter.Instance, ct);
        Assert.Equal(VmState.Stopped, killed.State);
    }

    [Fact]
    public async Task AMacImageGivesVmsTheirOwnDiskCloneNvramAndTheImageIdentity()
    {
        var ct = CancellationToken.None;
        var tart = Path.Combine(_files, "tart-vm");
        Directory.CreateDirectory(tart);
        File.WriteAllText(Path.Combine(tart, "config.json"),
            $$"""{"os":"darwin","arch":"arm64","hardwareModel":"{{Convert.ToBase64String("fake hardware model"u8.ToArray())}}","ecid":"{{Convert.ToBase64String(new byte[] { 9, 8, 7 })}}","cpuCount":4,"memorySize":4294967296}""");
        File.Copy(Path.Combine(_files, "disk.img"), Path.Combine(tart, "disk.img"));
        File.WriteAllText(Path.Combine(tart, "nvram.bin"), "nvram");
        var image = await new ImageLibrary(_store).ImportAsync(new ImportImageRequest { Name = "sonoma", TartPath = tart }, NullReporter.Instance, ct);
        Assert.Equal(ImageKind.MacOS, image.Kind);

        var vms = new VmManager(_store);
        var vm = await vms.CreateAsync(new NewVmRequest { Name = "m1", Image = "sonoma", Driver = VmDriverKind.Apple, MemoryMB = 4096, NoStart = true }, NullReporter.Instance, ct);
        var mac = vm.Configuration.Boot.MacPlatform!;
        Assert.Equal("nvram", await File.ReadAllTextAsync(Path.Combine(vm.Path, mac.AuxiliaryStorageFile), ct));
        Assert.Equal(new byte[] { 9, 8, 7 }, await File.ReadAllBytesAsync(mac.MachineIdentifierPath, ct));
        Assert.True(File.Exists(Path.Combine(vm.Path, "disk.img")));
        var ex = await Assert.ThrowsAsync<ArgumentException>(() => vms.CreateAsync(new NewVmRequest { Name = "m2", Image = "sonoma", NoStart = true }, NullReporter.Instance, ct));
        Assert.Contains("-Driver Apple", ex.Message, StringComparison.Ordinal);
    }
}
