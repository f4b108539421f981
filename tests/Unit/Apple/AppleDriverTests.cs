using System.Net.Sockets;
using System.Text;
using MacVm.Engine.Drivers;
using MacVm.Engine.Drivers.Apple;
using MacVm.Engine.Drivers.Apple.Interop;
using MacVm.Engine.Operations;
using Xunit;

namespace MacVm.Tests.Unit.Apple;

/// <summary>The Apple driver against the fake Virtualization framework: operations, selector sequences, errors, lifetimes.</summary>
[Collection(FakeVirtualizationTests.Name)]
[Trait("Category", FakeVirtualizationTests.Name)]
public sealed class AppleDriverTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private readonly TestVmFolder _folder = new();
    private readonly RecordingSink _sink = new();
    private readonly long _handlesBefore;

    public AppleDriverTests()
    {
        FakeVz.Reset();
        _handlesBefore = NativeHandles.Live;
    }

    public void Dispose() => _folder.Dispose();

    private AppleVirtualMachine Create(VmConfiguration config) =>
        (AppleVirtualMachine)AppleDriver.Instance.Create(config, _folder.Paths, _sink);

    private static readonly string[] LinuxConfiguration =
    {
        "-[VZVirtualMachineConfiguration init]",
        "-[VZLinuxBootLoader initWithKernelURL:]",
        "-[VZLinuxBootLoader setInitialRamdiskURL:]",
        "-[VZLinuxBootLoader setCommandLine:]",
        "-[VZVirtualMachineConfiguration setBootLoader:]",
        "-[VZGenericPlatformConfiguration init]",
        "-[VZVirtualMachineConfiguration setPlatform:]",
        "-[VZFileHandleSerialPortAttachment initWithFileHandleForReading:fileHandleForWriting:]",
        "-[VZVirtioConsoleDeviceSerialPortConfiguration init]",
        "-[VZVirtioConsoleDeviceSerialPortConfiguration setAttachment:]",
        "-[VZVirtualMachineConfiguration setSerialPorts:]",
        "-[VZVirtualMachineConfiguration setCPUCount:]",
        "-[VZVirtualMachineConfiguration setMemorySize:]",
        "-[VZDiskImageStorageDeviceAttachment initWithURL:readOnly:error:]",
        "-[VZVirtioBlockDeviceConfiguration initWithAttachment:]",
        "-[VZVirtualMachineConfiguration setStorageDevices:]",
        "-[VZVirtioNetworkDeviceConfiguration init]",
        "-[VZMACAddress initWithString:]",
        "-[VZVirtioNetworkDeviceConfiguration setMACAddress:]",
        "-[VZFileHandleNetworkDeviceAttachment initWithFileHandle:]",
        "-[VZVirtioNetworkDeviceConfiguration setAttachment:]",
        "-[VZVirtualMachineConfiguration setNetworkDevices:]",
        "-[VZVirtioSocketDeviceConfiguration init]",
        "-[VZVirtualMachineConfiguration setSocketDevices:]",
        "-[VZVirtualMachineConfiguration validateWithError:]",
        "-[VZVirtualMachine initWithConfiguration:queue:]",
        "-[VZVirtualMachine setDelegate:]",
    };

    [Fact]
    public async Task LinuxGuestStartsWithTheExactConfigurationSequence()
    {
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            Assert.Equal(LinuxConfiguration.Append("-[VZVirtualMachine startWithCompletionHandler:]"), FakeVz.Calls());
            Assert.Equal("hvf", vm.Accelerator);
            Assert.Null(vm.HypervisorProcessId);
            Assert.Contains("completion -[VZVirtualMachine startWithCompletionHandler:] error=0 state=Running", FakeVz.Events(), StringComparison.Ordinal);
            // The console is a pipe the VM writes and the host reads: the fake guest's boot line arrives.
            await WaitUntilAsync(() => _sink.Console.Contains("VZFake guest: booted"));
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task MacGuestGetsPlatformGraphicsKeyboardAndTrackpad()
    {
        await using (var vm = Create(_folder.Mac()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            Assert.Equal(new[]
            {
                "-[VZVirtualMachineConfiguration init]",
                "-[VZMacPlatformConfiguration init]",
                "-[VZMacHardwareModel initWithDataRepresentation:]",
                "-[VZMacHardwareModel isSupported]",
                "-[VZMacMachineIdentifier initWithDataRepresentation:]",
                "-[VZMacAuxiliaryStorage initWithURL:]",
                "-[VZMacPlatformConfiguration setHardwareModel:]",
                "-[VZMacPlatformConfiguration setMachineIdentifier:]",
                "-[VZMacPlatformConfiguration setAuxiliaryStorage:]",
                "-[VZVirtualMachineConfiguration setPlatform:]",
                "-[VZMacOSBootLoader init]",
                "-[VZVirtualMachineConfiguration setBootLoader:]",
                "-[VZMacGraphicsDisplayConfiguration initWithWidthInPixels:heightInPixels:pixelsPerInch:]",
                "-[VZMacGraphicsDeviceConfiguration init]",
                "-[VZMacGraphicsDeviceConfiguration setDisplays:]",
                "-[VZVirtualMachineConfiguration setGraphicsDevices:]",
                "-[VZMacKeyboardConfiguration init]",
                "-[VZVirtualMachineConfiguration setKeyboards:]",
                "-[VZMacTrackpadConfiguration init]",
                "-[VZVirtualMachineConfiguration setPointingDevices:]",
                "-[VZVirtualMachineConfiguration setCPUCount:]",
                "-[VZVirtualMachineConfiguration setMemorySize:]",
                "-[VZDiskImageStorageDeviceAttachment initWithURL:readOnly:error:]",
                "-[VZVirtioBlockDeviceConfiguration initWithAttachment:]",
                "-[VZVirtualMachineConfiguration setStorageDevices:]",
                "-[VZVirtioNetworkDeviceConfiguration init]",
                "-[VZMACAddress initWithString:]",
                "-[VZVirtioNetworkDeviceConfiguration setMACAddress:]",
                "-[VZFileHandleNetworkDeviceAttachment initWithFileHandle:]",
                "-[VZVirtioNetworkDeviceConfiguration setAttachment:]",
                "-[VZVirtualMachineConfiguration setNetworkDevices:]",
                "-[VZVirtioSocketDeviceConfiguration init]",
                "-[VZVirtualMachineConfiguration setSocketDevices:]",
                "-[VZVirtualMachineConfiguration validateWithError:]",
                "-[VZVirtualMachine initWithConfiguration:queue:]",
                "-[VZVirtualMachine setDelegate:]",
                "-[VZVirtualMachine startWithCompletionHandler:]",
            }, FakeVz.Calls());
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task PauseResumeAndStopRequestEachSendOneSelectorAndTheGuestStopEndsTheVm()
    {
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var mark = FakeVz.Calls().Length;
            await vm.PauseAsync(CancellationToken.None);
            Assert.Equal(new[] { "-[VZVirtualMachine pauseWithCompletionHandler:]" }, FakeVz.CallsSince(mark));
            mark = FakeVz.Calls().Length;
            await vm.ResumeAsync(CancellationToken.None);
            Assert.Equal(new[] { "-[VZVirtualMachine resumeWithCompletionHandler:]" }, FakeVz.CallsSince(mark));
            mark = FakeVz.Calls().Length;
            await vm.RequestShutdownAsync(CancellationToken.None);
            var exit = await vm.Exited.WaitAsync(Timeout);
            Assert.Equal(new[] { "-[VZVirtualMachine canRequestStop]", "-[VZVirtualMachine requestStopWithError:]" }, FakeVz.CallsSince(mark));
            Assert.True(exit.GuestShutdown);
            Assert.Contains("guestDidStopVirtualMachine:", FakeVz.Events(), StringComparison.Ordinal);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task KillStopsTheVmAndSaysTheHostDidIt()
    {
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var mark = FakeVz.Calls().Length;
            vm.Kill();
            var exit = await vm.Exited.WaitAsync(Timeout);
            Assert.False(exit.GuestShutdown);
            Assert.Contains("stopped by the host", exit.Description, StringComparison.Ordinal);
            Assert.Equal(new[] { "-[VZVirtualMachine state]", "-[VZVirtualMachine stopWithCompletionHandler:]" }, FakeVz.CallsSince(mark));
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task AVmThatDiesReportsTheFrameworkError()
    {
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            FakeVz.GuestError(vm.Handle, 1);
            var exit = await vm.Exited.WaitAsync(Timeout);
            Assert.False(exit.GuestShutdown);
            Assert.Contains("VZErrorDomain 1", exit.Description, StringComparison.Ordinal);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task AFailedStartIsAStartFailedError()
    {
        FakeVz.FailNext("startWithCompletionHandler:", 1);
        await using (var vm = Create(_folder.Linux()))
        {
            var ex = await Assert.ThrowsAsync<MacVmException>(() => vm.StartAsync(null, CancellationToken.None));
            Assert.Equal("StartFailed", ex.Problem);
            Assert.Equal(MacVmErrorKind.HostFailed, ex.Kind);
            Assert.Contains("Injected failure of startWithCompletionHandler:", ex.Message, StringComparison.Ordinal);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task AConfigurationTheFrameworkRefusesIsAnErrorBeforeAnyVmIsMade()
    {
        FakeVz.FailNext("validateWithError:", 2);
        await using (var vm = Create(_folder.Linux()))
        {
            var ex = await Assert.ThrowsAsync<MacVmException>(() => vm.StartAsync(null, CancellationToken.None));
            Assert.Equal("InvalidConfiguration", ex.Problem);
            Assert.DoesNotContain("-[VZVirtualMachine initWithConfiguration:queue:]", FakeVz.Calls());
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task AMissingKernelIsAnErrorNamingTheFile()
    {
        var config = _folder.Linux();
        config = config with { Boot = config.Boot with { KernelPath = _folder.File_("no-such-kernel") } };
        await using (var vm = Create(config))
        {
            var ex = await Assert.ThrowsAsync<MacVmException>(() => vm.StartAsync(null, CancellationToken.None));
            Assert.Contains("no-such-kernel", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("-[VZLinuxBootLoader initWithKernelURL:]", FakeVz.Calls());
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task SaveThenRestoreInANewVmResumesIt()
    {
        var state = _folder.File_("state.vzvmsave");
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var mark = FakeVz.Calls().Length;
            var frozen = (await vm.SaveAsync(state, _folder.File_("disk-1.img"), CancellationToken.None)).FrozenDisk;
            Assert.Equal(new[]
            {
                "-[VZVirtualMachineConfiguration validateSaveRestoreSupportWithError:]",
                "-[VZVirtualMachine state]",
                "-[VZVirtualMachine pauseWithCompletionHandler:]",
                "-[VZVirtualMachine saveMachineStateToURL:completionHandler:]",
            }, FakeVz.CallsSince(mark));
            Assert.True(File.Exists(state));
            Assert.Equal("disk", File.ReadAllText(frozen));
            Assert.False(File.Exists(_folder.File_("disk-1.img")), "the VM keeps writing to its own disk");
        }
        FakeVz.Reset();
        await using (var restored = Create(_folder.Linux()))
        {
            await restored.StartAsync(new RestoreSpec { Snapshot = "s1", StatePath = state }, CancellationToken.None);
            Assert.Equal(LinuxConfiguration.Concat(new[]
            {
                "-[VZVirtualMachineConfiguration validateSaveRestoreSupportWithError:]",
                "-[VZVirtualMachine restoreMachineStateFromURL:completionHandler:]",
                "-[VZVirtualMachine resumeWithCompletionHandler:]",
            }), FakeVz.Calls());
            Assert.Contains("completion -[VZVirtualMachine resumeWithCompletionHandler:] error=0 state=Running", FakeVz.Events(), StringComparison.Ordinal);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task ARestoreThatFailsThrowsRestoreFailedAndAColdStartOfANewVmThenWorks()
    {
        var state = _folder.File_("state.vzvmsave");
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            await vm.SaveAsync(state, _folder.File_("disk-1.img"), CancellationToken.None);
        }
        FakeVz.Reset();
        FakeVz.FailNext("restoreMachineStateFromURL:completionHandler:", 12);
        // What VmHost does: a state that does not load falls back to a cold boot of a new machine.
        var failed = Create(_folder.Linux());
        var ex = await Assert.ThrowsAsync<RestoreFailedException>(() => failed.StartAsync(new RestoreSpec { Snapshot = "s1", StatePath = state }, CancellationToken.None));
        Assert.Contains("VZErrorDomain 12", ex.Message, StringComparison.Ordinal);
        await failed.DisposeAsync();
        await using (var cold = Create(_folder.Linux()))
        {
            await cold.StartAsync(null, CancellationToken.None);
            Assert.EndsWith("state=Running\n", FakeVz.Events(), StringComparison.Ordinal);
        }
        Assert.DoesNotContain(FakeVz.Calls(), c => c == "-[VZVirtualMachine resumeWithCompletionHandler:]");
        AssertNothingLeaked();
    }

    [Fact]
    public async Task ARestoreFromAStateOfAnotherConfigurationIsRestoreFailed()
    {
        var state = _folder.File_("state.vzvmsave");
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            await vm.SaveAsync(state, _folder.File_("disk-1.img"), CancellationToken.None);
        }
        await using (var other = Create(_folder.Linux() with { CpuCount = 2 }))
        {
            await Assert.ThrowsAsync<RestoreFailedException>(() => other.StartAsync(new RestoreSpec { Snapshot = "s1", StatePath = state }, CancellationToken.None));
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task SavingAConfigurationThatCannotBeSavedIsSaveNotSupportedAndLeavesTheVmRunning()
    {
        await using (var vm = Create(_folder.Linux() with { SharedDirectory = _folder.File_("share") }))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var ex = await Assert.ThrowsAsync<MacVmException>(() => vm.SaveAsync(_folder.File_("state.vzvmsave"), _folder.File_("disk-1.img"), CancellationToken.None));
            Assert.Equal("SaveNotSupported", ex.Problem);
            Assert.Equal(MacVmErrorKind.InvalidState, ex.Kind);
            Assert.DoesNotContain("-[VZVirtualMachine pauseWithCompletionHandler:]", FakeVz.Calls());
            Assert.False(File.Exists(_folder.File_("state.vzvmsave")));
            Assert.Contains("-[VZVirtioFileSystemDeviceConfiguration initWithTag:]", FakeVz.Calls());
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task ASaveTheFrameworkFailsIsSaveFailed()
    {
        FakeVz.FailNext("saveMachineStateToURL:completionHandler:", 11);
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var ex = await Assert.ThrowsAsync<MacVmException>(() => vm.SaveAsync(_folder.File_("state.vzvmsave"), _folder.File_("disk-1.img"), CancellationToken.None));
            Assert.Equal("SaveFailed", ex.Problem);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task TheNicCanBeUnpluggedPutOnNatAndOnTheHostRelayWhileRunning()
    {
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var mark = FakeVz.Calls().Length;
            await vm.SetNetworkAttachmentAsync(NicAttachment.Disconnected, CancellationToken.None);
            Assert.Equal(new[] { "-[VZVirtualMachine networkDevices]", "-[VZNetworkDevice setAttachment:]" }, FakeVz.CallsSince(mark));
            mark = FakeVz.Calls().Length;
            await vm.SetNetworkAttachmentAsync(NicAttachment.Nat, CancellationToken.None);
            Assert.Equal(new[] { "-[VZVirtualMachine networkDevices]", "-[VZNATNetworkDeviceAttachment init]", "-[VZNetworkDevice setAttachment:]" }, FakeVz.CallsSince(mark));
            mark = FakeVz.Calls().Length;
            await vm.SetNetworkAttachmentAsync(NicAttachment.HostRelay, CancellationToken.None);
            Assert.Equal(new[]
            {
                "-[VZVirtualMachine networkDevices]",
                "-[VZFileHandleNetworkDeviceAttachment initWithFileHandle:]",
                "-[VZNetworkDevice setAttachment:]",
            }, FakeVz.CallsSince(mark));
            // The host relay's end: a datagram socket whose peer the attachment holds (a duplicate of it),
            // so a frame sent on it is one datagram; NAT is an attachment of its own, not a channel.
            Assert.Equal(SocketType.Dgram, vm.NicChannel.SocketType);
            Assert.Equal(3, vm.NicChannel.Send(new byte[] { 1, 2, 3 }));
            Assert.Null(vm.NatChannel);

            FakeVz.Disconnect(vm.Handle, 0, 7);
            Assert.True(FakeVz.WaitIdle());
            Assert.Contains("network attachment was disconnected", _sink.Text, StringComparison.Ordinal);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task AnAttachmentChosenBeforeStartGoesIntoTheConfiguration()
    {
        FakeVz.RequireNetworkAttachment(false);
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.SetNetworkAttachmentAsync(NicAttachment.Disconnected, CancellationToken.None);
            await vm.StartAsync(null, CancellationToken.None);
            var calls = FakeVz.Calls();
            Assert.DoesNotContain("-[VZNATNetworkDeviceAttachment init]", calls);
            Assert.DoesNotContain("-[VZVirtioNetworkDeviceConfiguration setAttachment:]", calls);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task TheGuestIpChannelAnswersEachConnectionAndPassesAcknowledgementsBack()
    {
        var responder = new Responder("{\"ip\":\"10.0.0.2\",\"mask\":\"255.255.255.0\",\"gw\":\"10.0.0.1\"}");
        using var cts = new CancellationTokenSource();
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var mark = FakeVz.Calls().Length;
            var serving = vm.ServeGuestIpAsync(responder, cts.Token);
            await WaitUntilAsync(() => FakeVz.Calls().Contains("-[VZVirtioSocketDevice setSocketListener:forPort:]"));
            Assert.Equal(new[]
            {
                "-[VZVirtioSocketListener init]",
                "-[VZVirtioSocketListener setDelegate:]",
                "-[VZVirtualMachine socketDevices]",
                "-[VZVirtioSocketDevice setSocketListener:forPort:]",
            }, FakeVz.CallsSince(mark));

            for (var i = 0; i < 2; i++)
            {
                var fd = FakeVz.GuestConnect(vm.Handle, AppleVirtualMachine.GuestIpPort, 40000 + (uint)i);
                Assert.True(fd >= 0, "the listener accepts the guest's connection");
                using var guest = new FdStream(fd);
                using var reader = new StreamReader(guest, Encoding.UTF8, false, 1024, leaveOpen: true);
                Assert.Equal(responder.Reply, await reader.ReadLineAsync().WaitAsync(Timeout));
                guest.Write(Encoding.UTF8.GetBytes($"applied {{\"ip\":\"10.0.2.{i}\"}}\n"));
                await WaitUntilAsync(() => responder.Acknowledgements.Count > i);
                Assert.Equal($"{{\"ip\":\"10.0.2.{i}\"}}", responder.Acknowledgements[i]);
                // One acknowledgement per connection: the host closes after it.
                Assert.Null(await reader.ReadLineAsync().WaitAsync(Timeout));
            }

            // "wait": nothing to acknowledge, the connection closes right after the line.
            responder.Reply = "wait";
            var waitFd = FakeVz.GuestConnect(vm.Handle, AppleVirtualMachine.GuestIpPort, 40005);
            using (var waiting = new FdStream(waitFd))
            using (var waitReader = new StreamReader(waiting, Encoding.UTF8, false, 1024, leaveOpen: true))
            {
                Assert.Equal("wait", await waitReader.ReadLineAsync().WaitAsync(Timeout));
                Assert.Null(await waitReader.ReadLineAsync().WaitAsync(Timeout));
            }
            Assert.Equal(-1, FakeVz.GuestConnect(vm.Handle, 51099, 40009));

            mark = FakeVz.Calls().Length;
            cts.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => serving.WaitAsync(Timeout));
            Assert.Equal(new[]
            {
                "-[VZVirtualMachine socketDevices]",
                "-[VZVirtioSocketDevice removeSocketListenerForPort:]",
                "-[VZVirtioSocketListener setDelegate:]",
            }, FakeVz.CallsSince(mark));
            Assert.Equal(-1, FakeVz.GuestConnect(vm.Handle, AppleVirtualMachine.GuestIpPort, 40010));
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task TheGuestAgentIsReachedOverVsock()
    {
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            await Assert.ThrowsAsync<IOException>(() => vm.ConnectGuestAgentAsync(CancellationToken.None));
            FakeVz.GuestListen(vm.Handle, AppleVirtualMachine.GuestAgentPort);
            var mark = FakeVz.Calls().Length;
            using var host = await vm.ConnectGuestAgentAsync(CancellationToken.None);
            Assert.Equal(new[] { "-[VZVirtualMachine socketDevices]", "-[VZVirtioSocketDevice connectToPort:completionHandler:]", "-[VZVirtioSocketConnection fileDescriptor]" }, FakeVz.CallsSince(mark));
            using var guest = new FdStream(FakeVz.GuestAccept(vm.Handle, AppleVirtualMachine.GuestAgentPort));
            host.Write(Encoding.UTF8.GetBytes("ping\n"));
            var buffer = new byte[5];
            Assert.Equal(5, guest.Read(buffer));
            Assert.Equal("ping\n", Encoding.UTF8.GetString(buffer));
            guest.Write(Encoding.UTF8.GetBytes("pong"));
            Assert.Equal(4, host.Read(buffer, 0, 4));
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task AScreenshotIsAPngOfTheGuestDisplayFromAnOffScreenView()
    {
        await using (var vm = Create(_folder.Mac()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            var mark = FakeVz.Calls().Length;
            var shot = await vm.CaptureScreenAsync(CancellationToken.None);
            Assert.Equal(new[]
            {
                "-[VZVirtualMachineView initWithFrame:]",
                "-[VZVirtualMachineView setVirtualMachine:]",
                "-[VZVirtualMachineView bitmapImageRepForCachingDisplayInRect:]",
                "-[VZVirtualMachineView cacheDisplayInRect:toBitmapImageRep:]",
                "-[NSBitmapImageRep representationUsingType:properties:]",
                "-[NSBitmapImageRep pixelsWide]",
                "-[NSBitmapImageRep pixelsHigh]",
            }, FakeVz.CallsSince(mark));
            Assert.Equal((1920, 1200, ScreenCaptureFormat.Png), (shot.Width, shot.Height, shot.Format));
            var rgba = DecodeStoredPng(shot.Data, out var width, out var height);
            Assert.Equal((1920, 1200), (width, height));
            Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }, rgba[..4]);
            var middle = (600 * 1920 + 960) * 4;
            Assert.Equal(new byte[] { 0x20, 0x60, 0xC0, 0xFF }, rgba[middle..(middle + 4)]);

            // A paused VM can be captured too; the view is made once.
            await vm.PauseAsync(CancellationToken.None);
            mark = FakeVz.Calls().Length;
            await vm.CaptureScreenAsync(CancellationToken.None);
            Assert.DoesNotContain("-[VZVirtualMachineView initWithFrame:]", FakeVz.CallsSince(mark));
        }
        AssertNothingLeaked();
    }

    // PNG (8-bit RGBA, filter 0 on every row) → pixels; enough for the fake's PNGs.
    private static byte[] DecodeStoredPng(byte[] png, out int width, out int height)
    {
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10 }, png[..8]);
        width = height = 0;
        using var idat = new MemoryStream();
        for (var at = 8; at < png.Length;)
        {
            var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            var type = Encoding.ASCII.GetString(png, at + 4, 4);
            if (type == "IHDR")
            {
                width = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at + 8));
                height = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at + 12));
            }
            if (type == "IDAT") idat.Write(png, at + 8, length);
            at += 12 + length;
        }
        idat.Position = 0;
        using var z = new System.IO.Compression.ZLibStream(idat, System.IO.Compression.CompressionMode.Decompress);
        using var raw = new MemoryStream();
        z.CopyTo(raw);
        var rows = raw.ToArray();
        var pixels = new byte[width * height * 4];
        for (var y = 0; y < height; y++)
        {
            Assert.Equal(0, rows[y * (width * 4 + 1)]);
            Array.Copy(rows, y * (width * 4 + 1) + 1, pixels, y * width * 4, width * 4);
        }
        return pixels;
    }

    [Fact]
    public async Task NoHandleObjectOrDelegateOutlivesItsVm()
    {
        var before = NativeHandles.Live;
        await using (var vm = Create(_folder.Linux()))
        {
            await vm.StartAsync(null, CancellationToken.None);
            Assert.True(NativeHandles.Live > before, "the VM's delegate holds a handle while the VM lives");
            Assert.True(FakeVz.LiveObjects() > 0);
        }
        AssertNothingLeaked();
    }

    [Fact]
    public async Task GarbageCollectionWhileCallbacksArePendingLosesNothing()
    {
        FakeVz.SetDelayMs(50);
        var vms = new List<AppleVirtualMachine>();
        for (var i = 0; i < 4; i++) vms.Add(Create(_folder.Linux($"gc{i}")));
        using var stop = new CancellationTokenSource();
        var collector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        });
        try
        {
            // Every operation's handler is pending on the fake's worker while the collector runs.
            await Task.WhenAll(vms.Select(v => v.StartAsync(null, CancellationToken.None)));
            for (var round = 0; round < 3; round++)
            {
                await Task.WhenAll(vms.Select(v => v.PauseAsync(CancellationToken.None)));
                await Task.WhenAll(vms.Select(v => v.ResumeAsync(CancellationToken.None)));
            }
        }
        finally
        {
            stop.Cancel();
            await collector;
            foreach (var vm in vms) await vm.DisposeAsync();
        }
        Assert.Equal(0, CallbackFailures.Count);
        AssertNothingLeaked();
    }

    [Fact]
    public async Task TheDriverRefusesOtherAccelerators()
    {
        var ex = Assert.Throws<MacVmException>(() => AppleDriver.Instance.CheckAvailable(VmAccelerator.Kvm));
        Assert.Equal("AcceleratorUnavailable", ex.Problem);
        AppleDriver.Instance.CheckAvailable(VmAccelerator.Auto);
        Assert.Same(AppleDriver.Instance, DriverRegistry.Get(VmDriverKind.Apple));
        await Task.CompletedTask;
    }

    private void AssertNothingLeaked()
    {
        Assert.True(FakeVz.WaitIdle(), "the fake's worker went idle");
        // Handler copies are released by the fake right after they ran, on its worker.
        var deadline = DateTime.UtcNow + Timeout;
        while ((NativeHandles.Live != _handlesBefore || FakeVz.LiveObjects() != 0) && DateTime.UtcNow < deadline) Thread.Sleep(10);
        Assert.Equal(_handlesBefore, NativeHandles.Live);
        Assert.Equal(0, RuntimeClasses.LiveInstances);
        Assert.Equal(0, FakeVz.LiveObjects());
        Assert.DoesNotContain("exception", FakeVz.Events(), StringComparison.Ordinal);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time");
            await Task.Delay(5);
        }
    }

    private sealed class Responder : IGuestIpResponder
    {
        public Responder(string reply) => Reply = reply;

        public string Reply { get; set; }

        public List<string> Acknowledgements { get; } = new();

        public string CurrentReply() => Reply;

        public void Applied(string acknowledgement)
        {
            lock (Acknowledgements) Acknowledgements.Add(acknowledgement);
        }
    }
}
