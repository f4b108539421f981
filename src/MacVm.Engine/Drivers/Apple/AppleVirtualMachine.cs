using System.Text;
using MacVm.Engine.Drivers.Apple.Interop;
using MacVm.Engine.Operations;
using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Apple;

/// <summary>
/// One VZVirtualMachine in the host process. Every call into the framework runs on the VM's queue
/// (<see cref="IVmQueue"/>); completion handlers and delegate methods only complete tasks or start
/// managed work, so nothing waits on the queue for the queue.
/// </summary>
internal sealed class AppleVirtualMachine : IVirtualMachine, IVmDelegateTarget
{
    /// <summary>The vsock port of the guest IP channel (the guest connects; the host answers one line).</summary>
    public const uint GuestIpPort = 51011;

    /// <summary>The vsock port the guest agent listens on (the host connects).</summary>
    public const uint GuestAgentPort = 51012;

    // VZVirtualMachineState values.
    private const long StateStopped = 0, StateRunning = 1, StatePaused = 2, StateError = 3;

    private readonly VmConfiguration _config;
    private readonly VmPaths _paths;
    private readonly IVmEventSink _events;
    private readonly IVmQueue _queue;
    private readonly TaskCompletionSource<HypervisorExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<uint, (nint Listener, nint Delegate)> _listeners = new();
    // The host relay's socket pair: the host reads and writes frames on the first, the NIC's file-handle
    // attachment gets (a duplicate of) the second.
    private readonly (System.Net.Sockets.Socket Host, System.Net.Sockets.Socket Guest) _nic = Libc.DatagramSocketPair();
    // Until the host says otherwise the NIC is on the host relay, which drops frames while the VM is not
    // connected anywhere: Virtualization.framework refuses a NIC configured without an attachment.
    private NicAttachment _attachment = NicAttachment.HostRelay;
    private nint _vm, _vzConfig, _delegate, _view;
    private FdStream? _consoleInput;
    private int _disposed;

    public AppleVirtualMachine(VmConfiguration config, VmPaths paths, IVmEventSink events, IVmQueue queue)
    {
        _config = config;
        _paths = paths;
        _events = events;
        _queue = queue;
    }

    public string? Accelerator { get; private set; }

    public int? HypervisorProcessId => null; // in-process

    public Task<HypervisorExit> Exited => _exited.Task;

    /// <summary>The VZVirtualMachine (tests hand it to the fake's simulated guest).</summary>
    internal nint Handle => _vm;

    public async Task StartAsync(RestoreSpec? restore, CancellationToken ct)
    {
        await _queue.RunAsync(CreateMachine).ConfigureAwait(false);
        if (restore is not null)
        {
            // The framework's state file holds the memory too: there is no separate memory image.
            await RestoreAsync(restore.StatePath, ct).ConfigureAwait(false);
        }
        else
        {
            var error = await CompleteAsync(Sel.StartWithCompletionHandler, null, ct).ConfigureAwait(false);
            if (error is not null)
                throw new MacVmException(MacVmErrorKind.HostFailed, "StartFailed", $"Virtualization.framework could not start the VM: {error}", _config.Name);
            _events.Log("Virtualization.framework started the VM.");
        }
        Accelerator = "hvf";
    }

    // On the queue: configuration, VM, delegate.
    private void CreateMachine()
    {
        if (_vm != 0) throw new InvalidOperationException("The VM was already started once; make a new one.");
        using var builder = new VzConfigurationBuilder();
        try
        {
            // Kept until the VM goes: validateSaveRestoreSupportWithError: is asked of the configuration.
            _vzConfig = builder.Build(_config, _paths, _attachment, _nic.Guest);
        }
        catch
        {
            if (builder.Console is { } c)
            {
                Libc.Close(c.OutputRead);
                Libc.Close(c.InputWrite);
            }
            throw;
        }
        _vm = Msg.Id(NS.Alloc("VZVirtualMachine"), Sel.InitWithConfigurationQueue, _vzConfig, _queue.NativeQueue);
        _delegate = RuntimeClasses.NewVmDelegate(this);
        Msg.Void(_vm, Sel.SetDelegate, _delegate);
        if (builder.Console is { } console)
        {
            _consoleInput = new FdStream(console.InputWrite);
            _ = Task.Run(() => PumpConsoleAsync(new FdStream(console.OutputRead)));
        }
    }

    private async Task PumpConsoleAsync(FdStream output)
    {
        using var reader = new StreamReader(output, new UTF8Encoding(false));
        try
        {
            while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line) _events.ConsoleLine(line.TrimEnd('\r'));
        }
        catch (IOException)
        {
            // The VM closed its end.
        }
    }

    private async Task RestoreAsync(string stateFile, CancellationToken ct)
    {
        if (!File.Exists(stateFile)) throw new RestoreFailedException($"The machine state '{stateFile}' does not exist.");
        var refusal = await _queue.RunAsync(() =>
        {
            if (!ObjC.Responds(_vm, Sel.RestoreMachineStateFromUrl))
                return "restoring a machine state needs macOS 14 or later on Apple silicon";
            return SaveRestoreRefusal();
        }).ConfigureAwait(false);
        if (refusal is not null) throw new RestoreFailedException($"Virtualization.framework cannot restore '{stateFile}': {refusal}.");
        var error = await CompleteAsync(Sel.RestoreMachineStateFromUrl, stateFile, ct).ConfigureAwait(false);
        if (error is not null) throw new RestoreFailedException($"Virtualization.framework could not restore the machine state '{stateFile}': {error}");
        // A restored VM is paused where it was saved.
        error = await CompleteAsync(Sel.ResumeWithCompletionHandler, null, ct).ConfigureAwait(false);
        if (error is not null) throw new RestoreFailedException($"The restored VM did not resume: {error}");
        _events.Log($"Machine state restored from '{stateFile}' and resumed.");
    }

    // On the queue: why the configuration cannot be saved or restored, or null when it can.
    private unsafe string? SaveRestoreRefusal()
    {
        if (!ObjC.Responds(_vzConfig, Sel.ValidateSaveRestoreSupportWithError)) return "saving and restoring need macOS 14 or later on Apple silicon";
        nint error = 0;
        return Msg.Bool(_vzConfig, Sel.ValidateSaveRestoreSupportWithError, &error) ? null : NS.Error(error)?.ToString() ?? "not supported";
    }

    public async Task<SavedMachine> SaveAsync(string stateFile, string newActiveDisk, CancellationToken ct)
    {
        var refusal = await _queue.RunAsync(() =>
            ObjC.Responds(Vm(), Sel.SaveMachineStateToUrl) ? SaveRestoreRefusal() : "saving a machine state needs macOS 14 or later on Apple silicon").ConfigureAwait(false);
        if (refusal is not null)
            throw new MacVmException(MacVmErrorKind.InvalidState, "SaveNotSupported", $"This VM cannot be saved: {refusal}.", _config.Name);
        if (await StateAsync().ConfigureAwait(false) != StatePaused) await PauseAsync(ct).ConfigureAwait(false);
        var error = await CompleteAsync(Sel.SaveMachineStateToUrl, stateFile, ct).ConfigureAwait(false);
        if (error is not null)
            throw new MacVmException(MacVmErrorKind.HostFailed, "SaveFailed", $"Virtualization.framework could not save the machine state: {error}", _config.Name);
        // The disk that belongs to the state is the disk as it is now, with the guest paused: an APFS
        // clone (O(1)) next to the state. The VM keeps writing to its own disk, so its active disk
        // does not change (newActiveDisk is not made).
        var disk = _paths.Disk(_config.Boot.DiskFile ?? throw new IOException("The VM has no disk to freeze."));
        var frozen = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(stateFile))!, "disk.frozen.img");
        AtomicFile.TryDelete(frozen);
        Libc.CloneFile(disk, frozen);
        _events.Log($"Machine state saved to '{stateFile}'; disk cloned to '{frozen}'.");
        // The framework writes the file itself, so it is hashed here, once it is complete.
        return new SavedMachine(frozen, [await Operations.SnapshotIntegrity.DescribeAsync(stateFile, SnapshotFile.StateRole, ct).ConfigureAwait(false)]);
    }

    public async Task PauseAsync(CancellationToken ct)
    {
        var error = await CompleteAsync(Sel.PauseWithCompletionHandler, null, ct).ConfigureAwait(false);
        if (error is not null) throw new MacVmException(MacVmErrorKind.InvalidState, "PauseFailed", $"Virtualization.framework could not pause the VM: {error}", _config.Name);
    }

    public async Task ResumeAsync(CancellationToken ct)
    {
        var error = await CompleteAsync(Sel.ResumeWithCompletionHandler, null, ct).ConfigureAwait(false);
        if (error is not null) throw new MacVmException(MacVmErrorKind.InvalidState, "ResumeFailed", $"Virtualization.framework could not resume the VM: {error}", _config.Name);
    }

    public Task RequestShutdownAsync(CancellationToken ct) => _queue.RunAsync(() =>
    {
        unsafe
        {
            nint error = 0;
            if (!Msg.Bool(Vm(), Sel.CanRequestStop))
                throw new MacVmException(MacVmErrorKind.InvalidState, "StopRequestRefused", "The VM cannot be asked to stop now (it is not running).", _config.Name);
            if (!Msg.Bool(_vm, Sel.RequestStopWithError, &error))
                throw new MacVmException(MacVmErrorKind.InvalidState, "StopRequestRefused", $"Virtualization.framework refused the stop request: {NS.Error(error)}", _config.Name);
        }
    });

    public void Kill()
    {
        if (_vm == 0)
        {
            _exited.TrySetResult(new HypervisorExit(false, "The VM was stopped before it started."));
            return;
        }
        _ = _queue.RunAsync(() =>
        {
            var state = Msg.Long(_vm, Sel.State);
            if (state is StateStopped or StateError)
            {
                _exited.TrySetResult(new HypervisorExit(false, "The VM was stopped by the host."));
                return;
            }
            using var block = NativeBlock.ForError(e =>
            {
                var error = NS.Error(e);
                if (error is null) _exited.TrySetResult(new HypervisorExit(false, "The VM was stopped by the host (stopWithCompletionHandler:)."));
                else _events.Log($"Virtualization.framework could not stop the VM: {error}");
            });
            Msg.Void(_vm, Sel.StopWithCompletionHandler, block.Pointer);
        }).ContinueWith(t => _events.Log($"Stopping the VM failed: {t.Exception!.GetBaseException().Message}"),
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
    }

    public async Task<Stream> ConnectGuestAgentAsync(CancellationToken ct)
    {
        var connected = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _queue.RunAsync(() =>
        {
            using var block = NativeBlock.ForObjectAndError((connection, e) =>
            {
                // The connection closes its descriptor when it goes: keep a duplicate instead of the object.
                if (connection != 0) connected.TrySetResult(Libc.Dup(Msg.Int(connection, Sel.FileDescriptor)));
                else connected.TrySetException(new IOException($"The guest agent did not accept a connection on vsock port {GuestAgentPort}: {NS.Error(e)}"));
            });
            Msg.Void(SocketDevice(), Sel.ConnectToPort, GuestAgentPort, block.Pointer);
        }).ConfigureAwait(false);
        try
        {
            return new FdStream(await connected.Task.WaitAsync(ct).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
            _ = connected.Task.ContinueWith(t => Libc.Close(t.Result), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            throw;
        }
    }

    /// <inheritdoc/>
    public System.Net.Sockets.Socket NicChannel => _nic.Host;

    /// <inheritdoc/>
    /// <remarks>Null: NAT is an attachment of its own here (VZNATNetworkDeviceAttachment).</remarks>
    public System.Net.Sockets.Socket? NatChannel => null;

    public async Task SetNetworkAttachmentAsync(NicAttachment attachment, CancellationToken ct)
    {
        if (_vm == 0)
        {
            _attachment = attachment; // used when the configuration is built
            return;
        }
        await _queue.RunAsync(() =>
        {
            var device = NS.At(Msg.Id(_vm, Sel.NetworkDevices), 0);
            if (!ObjC.Responds(device, Sel.SetAttachment))
                throw new MacVmException(MacVmErrorKind.NotInstalled, "NotSupported", "Changing the network of a running VM needs macOS 13 or later.", _config.Name);
            var vz = VzConfigurationBuilder.NewAttachment(attachment, _nic.Guest);
            try
            {
                Msg.Void(device, Sel.SetAttachment, vz);
            }
            finally
            {
                NS.Release(vz);
            }
        }).ConfigureAwait(false);
        _attachment = attachment;
        _events.Log($"Network attachment changed to {attachment}.");
    }

    public async Task ServeGuestIpAsync(IGuestIpResponder responder, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(responder);
        var server = new GuestIpServer(responder, _events, ct);
        await _queue.RunAsync(() =>
        {
            if (_listeners.ContainsKey(GuestIpPort)) throw new InvalidOperationException($"vsock port {GuestIpPort} is already served.");
            var listener = NS.New("VZVirtioSocketListener");
            var listenerDelegate = RuntimeClasses.NewListenerDelegate(server);
            Msg.Void(listener, Sel.SetDelegate, listenerDelegate);
            Msg.Void(SocketDevice(), Sel.SetSocketListenerForPort, listener, GuestIpPort);
            _listeners[GuestIpPort] = (listener, listenerDelegate);
        }).ConfigureAwait(false);
        try
        {
            await Task.WhenAny(Task.Delay(Timeout.Infinite, ct), _exited.Task).ConfigureAwait(false);
        }
        finally
        {
            if (Volatile.Read(ref _disposed) == 0) await _queue.RunAsync(() => RemoveListener(GuestIpPort)).ConfigureAwait(false);
            await server.DrainAsync().ConfigureAwait(false);
        }
        ct.ThrowIfCancellationRequested();
    }

    // On the queue.
    private void RemoveListener(uint port)
    {
        if (!_listeners.Remove(port, out var entry)) return;
        if (_vm != 0) Msg.Void(SocketDevice(), Sel.RemoveSocketListenerForPort, port);
        Msg.Void(entry.Listener, Sel.SetDelegate, 0); // the delegate is weak: clear it before it goes
        NS.Release(entry.Listener);
        NS.Release(entry.Delegate);
    }

    public Task<ScreenCapture> CaptureScreenAsync(CancellationToken ct) => _queue.RunAsync(() =>
    {
        var rect = new CGRect(0, 0, VzConfigurationBuilder.DisplayWidth, VzConfigurationBuilder.DisplayHeight);
        if (_view == 0)
        {
            // An off-screen view attached to the VM: it renders the guest's display without a window.
            _view = Msg.Id(NS.Alloc("VZVirtualMachineView"), Sel.InitWithFrame, rect);
            Msg.Void(_view, Sel.SetVirtualMachine, Vm());
        }
        if (!ObjC.Responds(_view, Sel.BitmapImageRepForCachingDisplayInRect))
            throw new MacVmException(MacVmErrorKind.NotInstalled, "NotSupported", "This framework's VZVirtualMachineView cannot render into a bitmap (no AppKit).", _config.Name);
        var rep = Msg.Id(_view, Sel.BitmapImageRepForCachingDisplayInRect, rect);
        if (rep == 0) throw new IOException("VZVirtualMachineView gave no bitmap to render into.");
        Msg.Void(_view, Sel.CacheDisplayInRectToBitmapImageRep, rect, rep);
        const nuint NSBitmapImageFileTypePNG = 4;
        var png = Msg.Id(rep, Sel.RepresentationUsingTypeProperties, NSBitmapImageFileTypePNG, NS.EmptyDictionary());
        if (png == 0) throw new IOException("The display could not be encoded as PNG.");
        return new ScreenCapture((int)Msg.Long(rep, Sel.PixelsWide), (int)Msg.Long(rep, Sel.PixelsHigh), ScreenCaptureFormat.Png, NS.Bytes(png));
    });

    // ---- delegate (called on the framework's thread) ----

    void IVmDelegateTarget.GuestDidStop() => _exited.TrySetResult(new HypervisorExit(true, "The guest stopped the VM."));

    void IVmDelegateTarget.DidStopWithError(NSErrorInfo? error) =>
        _exited.TrySetResult(new HypervisorExit(false, $"Virtualization.framework stopped the VM with an error: {error}"));

    void IVmDelegateTarget.AttachmentDisconnected(NSErrorInfo? error)
    {
        _attachment = NicAttachment.Disconnected;
        _events.Log($"The network attachment was disconnected: {error}");
    }

    // ---- helpers ----

    private Task<long> StateAsync() => _queue.RunAsync(() => Msg.Long(Vm(), Sel.State));

    /// <summary>Sends a <c>…WithCompletionHandler:</c> (optionally with a file URL first) and waits for the handler.</summary>
    private async Task<NSErrorInfo?> CompleteAsync(Selector selector, string? path, CancellationToken ct)
    {
        var done = new TaskCompletionSource<NSErrorInfo?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _queue.RunAsync(() =>
        {
            var vm = Vm();
            if (!ObjC.Responds(vm, selector))
                throw new MacVmException(MacVmErrorKind.NotInstalled, "NotSupported", $"This version of Virtualization.framework has no {selector.Name}.", _config.Name);
            using var block = NativeBlock.ForError(e => done.TrySetResult(NS.Error(e)));
            if (path is null) Msg.Void(vm, selector, block.Pointer);
            else Msg.Void(vm, selector, NS.FileUrl(Path.GetFullPath(path)), block.Pointer);
        }).ConfigureAwait(false);
        return await done.Task.WaitAsync(ct).ConfigureAwait(false);
    }

    private nint Vm() => _vm != 0 ? _vm : throw new InvalidOperationException("The VM has not been started.");

    private nint SocketDevice()
    {
        var devices = Msg.Id(Vm(), Sel.SocketDevices);
        return NS.Count(devices) > 0 ? NS.At(devices, 0) : throw new IOException("The VM has no virtio socket device.");
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try
        {
            if (_vm != 0)
            {
                var state = await StateAsync().ConfigureAwait(false);
                if (state is not (StateStopped or StateError))
                {
                    Kill();
                    await Task.WhenAny(_exited.Task, Task.Delay(TimeSpan.FromSeconds(10))).ConfigureAwait(false);
                }
            }
            await _queue.RunAsync(() =>
            {
                foreach (var port in _listeners.Keys.ToList()) RemoveListener(port);
                if (_vm != 0) Msg.Void(_vm, Sel.SetDelegate, 0);
                NS.Release(_view);
                NS.Release(_vm);
                NS.Release(_vzConfig);
                NS.Release(_delegate);
                _view = _vm = _vzConfig = _delegate = 0;
            }).ConfigureAwait(false);
        }
        finally
        {
            _consoleInput?.Dispose();
            _nic.Host.Dispose();
            _nic.Guest.Dispose();
            _exited.TrySetResult(new HypervisorExit(false, "The VM was released."));
            _queue.Dispose();
        }
    }

    /// <summary>Answers guest IP requests: one line per connection, then the guest's acknowledgements.</summary>
    private sealed class GuestIpServer : ISocketListenerTarget
    {
        private readonly IGuestIpResponder _responder;
        private readonly IVmEventSink _events;
        private readonly CancellationToken _ct;
        private readonly List<Task> _connections = new();

        private const string AppliedPrefix = "applied ";
        private static readonly TimeSpan AcknowledgementTimeout = TimeSpan.FromSeconds(1);

        public GuestIpServer(IGuestIpResponder responder, IVmEventSink events, CancellationToken ct)
        {
            _responder = responder;
            _events = events;
            _ct = ct;
        }

        public bool ShouldAccept(int fileDescriptor, uint destinationPort)
        {
            if (_ct.IsCancellationRequested) return false;
            var stream = new FdStream(Libc.Dup(fileDescriptor));
            lock (_connections) _connections.Add(Task.Run(() => ServeAsync(stream)));
            return true;
        }

        private async Task ServeAsync(FdStream stream)
        {
            try
            {
                using (stream)
                {
                    // Connecting is the request: one reply line. After a configuration the guest may write
                    // one acknowledgement ("applied JSON") within a second; after "wait" there is nothing
                    // to acknowledge and the connection closes at once (docs/guest-protocol.md).
                    var reply = _responder.CurrentReply();
                    await stream.WriteAsync(Encoding.UTF8.GetBytes(reply + "\n"), _ct).ConfigureAwait(false);
                    if (reply == "wait") return;
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_ct);
                    timeout.CancelAfter(AcknowledgementTimeout);
                    using var reader = new StreamReader(stream, new UTF8Encoding(false), false, 1024, leaveOpen: true);
                    var line = (await reader.ReadLineAsync(timeout.Token).ConfigureAwait(false))?.TrimEnd('\r');
                    if (line is not null && line.StartsWith(AppliedPrefix, StringComparison.Ordinal))
                        _responder.Applied(line[AppliedPrefix.Length..]);
                }
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
            {
                // The guest hung up, or serving stopped.
            }
            catch (Exception ex)
            {
                _events.Log($"Guest IP connection failed: {ex.Message}");
            }
        }

        public Task DrainAsync()
        {
            lock (_connections) return Task.WhenAll(_connections.ToArray());
        }
    }
}
