using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>One QEMU child process, its QMP connection and its serial console.</summary>
internal sealed class QemuVirtualMachine : IVirtualMachine
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);

    private readonly VmConfiguration _config;
    private readonly VmPaths _paths;
    private readonly IVmEventSink _events;
    private readonly TaskCompletionSource<HypervisorExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private QemuProcess? _qemu;
    private int? _pid;
    private QmpClient? _qmp;
    private QemuMigration? _migration;
    private Task? _serialPump;
    private volatile bool _guestShutdown;

    public QemuVirtualMachine(VmConfiguration config, VmPaths paths, IVmEventSink events)
    {
        _config = config;
        _paths = paths;
        _events = events;
    }

    public string? Accelerator { get; private set; }

    public int? HypervisorProcessId => _pid;

    public Task<HypervisorExit> Exited => _exited.Task;

    public async Task StartAsync(RestoreSpec? restore, CancellationToken ct)
    {
        var qemu = QemuInstallation.FindSystem();
        Accelerator = QemuDriver.ResolveAccelerator(_config.Accelerator);
        var args = QemuCommandLine.Build(_config, _paths, Accelerator, restore);
        var early = QemuEarlyStart.Take(qemu, args);
        if (early is null) PrepareFiles(_paths);
        // The host's ends of the NIC and of NAT: before QEMU when we start it here. A QEMU started early
        // may send a frame before they exist; it is dropped, as on a cable plugged in a moment later
        // (the guest is still loading its state or booting then).
        _nic = UnixSocket.BindDatagram(_paths.NicHostSocket);
        _nat = UnixSocket.BindDatagram(_paths.NatHostSocket);
        _qemu = early?.Process ?? QemuProcess.Start(qemu, args);
        _qemu.AttachOutput(line => _events.Log("qemu: " + line));
        _ = _qemu.Ended.ContinueWith(t => _exited.TrySetResult(t.Result is { } code
            ? new HypervisorExit(_guestShutdown, DescribeExit(code))
            : new HypervisorExit(false, "QEMU did not start" + QemuOutputTail())), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        var pid = await _qemu.Launched.ConfigureAwait(false);
        _pid = pid;
        _events.Log($"{(early is null ? "QEMU started" : "Adopted the QEMU started early")} (pid {pid}, accelerator {Accelerator}): {qemu} {string.Join(' ', args)}");

        if (early?.Restored is { } restored && restore is not null && early.StateFile == restore.StatePath)
        {
            await AdoptRestoreAsync(early, restored, restore, ct).ConfigureAwait(false);
            return;
        }
        try
        {
            Use(await QemuConnections.OpenAsync(_paths, _qemu, OnQmpEvent, ct).ConfigureAwait(false));
            var status = await Qmp().ExecuteAsync("query-status", null, ct).ConfigureAwait(false);
            _events.Log($"QMP connected; status {status?["status"]}");
            await ConnectToQemuReadyAsync(restore, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or TimeoutException or QmpException or SocketException)
        {
            // QEMU that fails at start closes its sockets as it exits: give it a moment, so the error
            // carries its exit status and what it printed rather than "socket closed".
            await Task.WhenAny(_exited.Task, Task.Delay(TimeSpan.FromSeconds(2), CancellationToken.None)).ConfigureAwait(false);
            var exit = _exited.Task.IsCompleted ? (await _exited.Task.ConfigureAwait(false)).Description : ex.Message + QemuOutputTail();
            Kill();
            throw new IOException($"QEMU did not come up: {exit}{QemuDriver.AcceleratorHint(Accelerator)}", ex);
        }
        if (restore is not null) await LoadStateAsync(restore.StatePath, QemuCommandLine.MapsMemoryImage(restore), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes over what the host's first act did for a restore (<see cref="QemuEarlyStart"/>): QEMU has loaded
    /// the state and the guest runs. A state that did not load is this restore's failure, as ever.
    /// </summary>
    private async Task AdoptRestoreAsync(EarlyQemu early, Task<QemuConnections> restored, RestoreSpec restore, CancellationToken ct)
    {
        QemuConnections connections;
        try
        {
            connections = await restored.ConfigureAwait(false);
        }
        catch (RestoreFailedException)
        {
            Kill();
            throw;
        }
        Use(connections);
        early.EventSink = OnQmpEvent;
        try
        {
            await ConnectToQemuReadyAsync(restore, ct).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            Kill();
            throw new IOException($"QEMU went away after loading the state: {ex.Message}{QemuOutputTail()}", ex);
        }
        _events.Log($"Machine state loaded from '{restore.StatePath}' and resumed (adopted).");
    }

    /// <summary>Takes the connections to QEMU: console lines go to the host from now on.</summary>
    private void Use(QemuConnections connections)
    {
        _qmp = connections.Qmp;
        _migration = connections.Migration;
        _serialPump = Task.Run(() => PumpSerialAsync(connections.Serial), CancellationToken.None);
    }

    /// <summary>Once QEMU answers QMP: plugs the host's frame sockets into QEMU's, and takes hold of the guest's memory file.</summary>
    private async Task ConnectToQemuReadyAsync(RestoreSpec? restore, CancellationToken ct)
    {
        // QEMU has bound its ends by now: from here on only its frames reach the host's sockets.
        await _nic!.ConnectAsync(new UnixDomainSocketEndPoint(_paths.NicSocket), ct).ConfigureAwait(false);
        await _nat!.ConnectAsync(new UnixDomainSocketEndPoint(_paths.NatSocket), ct).ConfigureAwait(false);
        // QEMU answered QMP, so it has made its memory: keep it reachable for saves, and take its name away.
        if (!QemuCommandLine.MapsMemoryImage(restore)) _sharedMemory = OpenSharedMemory(_paths.SharedMemoryFile);
    }

    /// <summary>Clears what a previous run of this VM may have left where QEMU is about to create its files.</summary>
    internal static void PrepareFiles(VmPaths paths)
    {
        foreach (var socket in SocketsOf(paths)) AtomicFile.TryDelete(socket);
        if (paths.SharedMemoryFile.StartsWith(VmPaths.SharedMemoryDirectory + "/", StringComparison.Ordinal))
            VmStore.CreatePrivateDirectory(VmPaths.SharedMemoryDirectory);
        // A host killed before it unlinked the file: QEMU must not start from that memory.
        AtomicFile.TryDelete(paths.SharedMemoryFile);
    }

    /// <summary>
    /// Opens the guest's shared memory for reading, then unlinks it: QEMU and this handle keep it alive, and
    /// it is gone when both are, however they end.
    /// </summary>
    private FileStream? OpenSharedMemory(string file)
    {
        try
        {
            var memory = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
            AtomicFile.TryDelete(file);
            return memory;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _events.Log($"The guest's memory file '{file}' could not be opened ({ex.Message}): saves will stream the memory.");
            return null;
        }
    }

    private async Task LoadStateAsync(string stateFile, bool memoryMapped, CancellationToken ct)
    {
        try
        {
            await Migration().LoadAndResumeAsync(stateFile, memoryMapped, QemuOutputTail, ct).ConfigureAwait(false);
            _events.Log($"Machine state loaded from '{stateFile}' and resumed.");
        }
        catch (RestoreFailedException)
        {
            Kill();
            throw;
        }
    }

    private int _diskGeneration;
    private Socket? _nic;
    private Socket? _nat;
    private FileStream? _sharedMemory;

    public async Task<SavedMachine> SaveAsync(string stateFile, string newActiveDisk, CancellationToken ct)
    {
        var qmp = Qmp();
        await qmp.ExecuteAsync("stop", null, ct).ConfigureAwait(false);
        var frozen = (await qmp.ExecuteAsync("query-block", null, ct).ConfigureAwait(false))?.AsArray()
            .Select(b => b?["inserted"]?["file"]?.GetValue<string>()).FirstOrDefault(f => f is not null)
            ?? throw new IOException("QEMU reports no disk to freeze.");
        var node = _diskGeneration == 0 ? "disk0" : $"disk0-{_diskGeneration}";
        var next = $"disk0-{_diskGeneration + 1}";
        // The current layer becomes read-only and belongs to the saved state; writes go to a new overlay.
        await qmp.ExecuteAsync("blockdev-snapshot-sync", new JsonObject
        {
            ["node-name"] = node,
            ["snapshot-file"] = newActiveDisk,
            ["snapshot-node-name"] = next,
            ["format"] = "qcow2",
        }, ct).ConfigureAwait(false);
        _diskGeneration++;
        // The default bandwidth cap (128 MiB/s) makes a save several times slower than the disk.
        await qmp.ExecuteAsync("migrate-set-parameters", new JsonObject { ["max-bandwidth"] = long.MaxValue / 2 }, ct).ConfigureAwait(false);
        // With the guest's memory in the file shared with us, QEMU streams only the devices (under 1 MB)
        // and the memory is copied as a flat image below; a VM mapping a snapshot's image privately has
        // no such file, and QEMU streams its memory too. QEMU streams to a socket of ours; we write and
        // hash on the way, so that the snapshot's checksum costs no second read of the file.
        var sharedMemory = _sharedMemory;
        var receiverPath = _paths.SaveSocket;
        AtomicFile.TryDelete(receiverPath);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(receiverPath));
        listener.Listen(1);
        using var receiving = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var receiver = ReceiveStateAsync(listener, stateFile, receiving.Token);
        try
        {
            var ended = await Migration().StartAsync("migrate", "unix:" + receiverPath, sharedMemory is not null, ct).ConfigureAwait(false);
            while (true)
            {
                await Migration().NextCheckAsync(ended, ct).ConfigureAwait(false);
                var info = await qmp.ExecuteAsync("query-migrate", null, ct).ConfigureAwait(false);
                var status = info?["status"]?.GetValue<string>();
                if (status == "completed") break;
                if (status is "failed" or "cancelled")
                {
                    // The writer's own error (a full disk, say) says more than QEMU's broken pipe.
                    receiving.CancelAfter(TimeSpan.FromSeconds(1));
                    var cause = await Task.WhenAny(receiver).ConfigureAwait(false) is { IsFaulted: true } failed && failed.Exception!.InnerException is IOException io ? io.Message : info?["error-desc"]?.GetValue<string>() ?? status;
                    throw new IOException($"QEMU could not write the machine state to '{stateFile}': {cause}{QemuOutputTail()}");
                }
                if (receiver.IsFaulted)
                {
                    try { await qmp.ExecuteAsync("migrate_cancel", null, CancellationToken.None).ConfigureAwait(false); }
                    catch (QmpException) { /* it failed on its own meanwhile */ }
                    throw new IOException($"Could not write the machine state to '{stateFile}': {receiver.Exception!.InnerException?.Message}");
                }
            }
            var state = await receiver.WaitAsync(TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
            var files = new List<SnapshotFile> { state };
            if (sharedMemory is not null)
            {
                var image = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(stateFile))!, MemoryImage.FileName);
                var copying = System.Diagnostics.Stopwatch.StartNew();
                files.Add(await Task.Run(() => MemoryImage.WriteAsync(sharedMemory.SafeFileHandle, _config.MemoryMB * (1L << 20), image, ct), ct).ConfigureAwait(false));
                _events.Log($"Memory image written in {copying.Elapsed.TotalMilliseconds:0} ms ({files[^1].SizeBytes >> 20} MiB).");
            }
            _events.Log($"Machine state saved to '{stateFile}'{(sharedMemory is null ? "" : " with the memory image beside it")}; disk layer '{frozen}' frozen, writes go to '{newActiveDisk}'.");
            return new SavedMachine(frozen, files);
        }
        finally
        {
            // Whatever happened, the state file is closed before the caller sees the outcome: a caller that
            // deletes a partial file must get its space back at once (on a full disk, it needs it).
            if (!receiver.IsCompleted)
            {
                receiving.Cancel();
                await Task.WhenAny(receiver, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
            }
            AtomicFile.TryDelete(receiverPath);
        }
    }

    /// <summary>Accepts QEMU's migration stream, writes it to <paramref name="stateFile"/> and describes it with its checksum.</summary>
    private static async Task<SnapshotFile> ReceiveStateAsync(Socket listener, string stateFile, CancellationToken ct)
    {
        using var connection = await listener.AcceptAsync(ct).ConfigureAwait(false);
        await using var file = new FileStream(stateFile, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous);
        var hash = new System.IO.Hashing.Crc64();
        long length = 0;
        // Two buffers: the next chunk is received while the last one is written and hashed (in parallel).
        var buffers = new[] { new byte[1 << 20], new byte[1 << 20] };
        Task pending = Task.CompletedTask;
        for (var i = 0; ; i ^= 1)
        {
            var buffer = buffers[i];
            var filled = 0;
            while (filled < buffer.Length && !pending.IsFaulted)
            {
                int n;
                try
                {
                    n = await connection.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, ct).ConfigureAwait(false);
                }
                catch (Exception) when (pending.IsFaulted)
                {
                    break; // the write's error below is the one that matters
                }
                if (n == 0) break;
                filled += n;
            }
            await pending.ConfigureAwait(false);
            if (filled == 0) break;
            var chunk = buffer.AsMemory(0, filled);
            length += filled;
            var hashing = Task.Run(() => hash.Append(chunk.Span), ct);
            pending = Task.WhenAll(file.WriteAsync(chunk, ct).AsTask(), hashing);
            // A failed write (a full disk) ends the stream at once: QEMU sees the socket close and fails the save.
            _ = pending.ContinueWith(_ =>
            {
                try { connection.Shutdown(SocketShutdown.Both); }
                catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { /* already closed */ }
            }, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            if (filled < buffer.Length) { await pending.ConfigureAwait(false); break; }
        }
        return new SnapshotFile(Path.GetFileName(stateFile), SnapshotFile.StateRole, length, Operations.FileChecksum.Format(hash));
    }

    private string DescribeExit(int code)
    {
        var how = code > 128 ? $"was killed by signal {code - 128}" : $"exited with code {code}";
        return $"QEMU (pid {_pid}) {how}{QemuOutputTail()}";
    }

    private string QemuOutputTail() => _qemu?.OutputTail() ?? "";

    /// <summary>The sockets QEMU binds for a VM (stale ones are deleted before it starts).</summary>
    internal static string[] SocketsOf(VmPaths paths) => [paths.QmpSocket, paths.SerialSocket, paths.AgentSocket, paths.GuestIpSocket, paths.NicSocket, paths.NatSocket];

    private void OnQmpEvent(string name, JsonObject? data)
    {
        if (name == "SHUTDOWN" && data?["guest"]?.GetValue<bool>() == true) _guestShutdown = true;
        _events.Log($"QMP event {name} {data?.ToJsonString()}");
    }

    private async Task PumpSerialAsync(Socket serial)
    {
        using var stream = new NetworkStream(serial, ownsSocket: true);
        using var reader = new StreamReader(stream, new UTF8Encoding(false));
        try
        {
            while (await reader.ReadLineAsync(_stopping.Token).ConfigureAwait(false) is { } line)
                _events.ConsoleLine(line.TrimEnd('\r'));
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
            // QEMU exited or we are shutting down.
        }
    }

    public Task PauseAsync(CancellationToken ct) => Qmp().ExecuteAsync("stop", null, ct);

    public Task ResumeAsync(CancellationToken ct) => Qmp().ExecuteAsync("cont", null, ct);

    public Task RequestShutdownAsync(CancellationToken ct) => Qmp().ExecuteAsync("system_powerdown", null, ct);

    private QmpClient Qmp() => _qmp ?? throw new InvalidOperationException("QEMU is not connected.");

    private QemuMigration Migration() => _migration ?? throw new InvalidOperationException("QEMU is not connected.");

    public void Kill()
    {
        try
        {
            _qemu?.Kill();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public async Task<Stream> ConnectGuestAgentAsync(CancellationToken ct)
    {
        var socket = await UnixSocket.ConnectWithRetryAsync(_paths.AgentSocket, ConnectTimeout, () => !_exited.Task.IsCompleted, ct).ConfigureAwait(false);
        return new NetworkStream(socket, ownsSocket: true);
    }

    public Socket NicChannel => _nic ?? throw new InvalidOperationException("QEMU is not started.");

    public Socket? NatChannel => _nat ?? throw new InvalidOperationException("QEMU is not started.");

    public async Task SetNetworkAttachmentAsync(NicAttachment attachment, CancellationToken ct)
    {
        // NAT is a target of the host's relay (NatChannel), so the NIC is either on the relay or unplugged.
        if (attachment == NicAttachment.Nat)
            throw new NotSupportedException("QEMU's NAT is reached through NatChannel: attach the NIC to HostRelay and relay to it.");
        var up = attachment == NicAttachment.HostRelay;
        await Qmp().ExecuteAsync("set_link", new JsonObject { ["name"] = "nic0", ["up"] = up }, ct).ConfigureAwait(false);
        _events.Log($"NIC link {(up ? "up (host relay)" : "down (unplugged)")}.");
    }

    public async Task ServeGuestIpAsync(IGuestIpResponder responder, CancellationToken ct)
    {
        Socket socket;
        try
        {
            socket = await UnixSocket.ConnectWithRetryAsync(_paths.GuestIpSocket, ConnectTimeout, () => !_exited.Task.IsCompleted, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or TimeoutException)
        {
            _events.Log($"Guest IP channel not served: {ex.Message}");
            return;
        }
        using var stream = new NetworkStream(socket, ownsSocket: true);
        using var reader = new StreamReader(stream, new UTF8Encoding(false));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, _stopping.Token);
        try
        {
            while (await reader.ReadLineAsync(stop.Token).ConfigureAwait(false) is { } raw)
            {
                var line = raw.TrimEnd('\r');
                string? reply;
                if (line == "get") reply = responder.CurrentReply();
                else if (line.StartsWith("applied ", StringComparison.Ordinal)) { responder.Applied(line["applied ".Length..]); reply = null; }
                else if (line.Length == 0) reply = null;
                else reply = "error unknown-request";
                if (reply is null) continue;
                var bytes = Encoding.UTF8.GetBytes(reply + "\n");
                await stream.WriteAsync(bytes, stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // QEMU exited or the host is stopping.
        }
    }

    private readonly SemaphoreSlim _capturing = new(1, 1);

    /// <summary>
    /// QMP screendump writes a PNG of the display to a file (also while paused); it is read and deleted at once.
    /// One capture at a time per VM: QEMU serialises them anyway, and each gets its own file.
    /// </summary>
    public async Task<ScreenCapture> CaptureScreenAsync(CancellationToken ct)
    {
        await _capturing.WaitAsync(ct).ConfigureAwait(false);
        var file = _paths.NewScreendumpFile();
        try
        {
            await Qmp().ExecuteAsync("screendump", new JsonObject { ["filename"] = file, ["format"] = "png" }, ct).ConfigureAwait(false);
            var data = await File.ReadAllBytesAsync(file, ct).ConfigureAwait(false);
            var header = Screenshots.ImageHeader.Read(data);
            if (header is not { Format: ScreenshotFormat.Png } h)
                throw new IOException($"QEMU's screendump '{file}' is not a PNG ({data.Length} bytes).");
            return new ScreenCapture(h.Width, h.Height, ScreenCaptureFormat.Png, data);
        }
        finally
        {
            AtomicFile.TryDelete(file);
            _capturing.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        Kill();
        if (_serialPump is not null) await _serialPump.ConfigureAwait(false);
        _nic?.Dispose();
        _nat?.Dispose();
        if (_sharedMemory is not null) await _sharedMemory.DisposeAsync().ConfigureAwait(false);
        AtomicFile.TryDelete(_paths.NicHostSocket);
        AtomicFile.TryDelete(_paths.NatHostSocket);
        _stopping.Dispose();
        _capturing.Dispose();
    }
}
