using System.Runtime.InteropServices;
using MacVm;
using MacVm.Engine.Drivers;
using MacVm.Engine.GuestProtocol;
using MacVm.Engine.HostProtocol;
using StreamJsonRpc;
using MacVm.Engine.Store;

namespace MacVm.Host;

/// <summary>
/// The life of one VM inside its host process: start the hypervisor, watch the boot, serve control
/// requests, and record how it all ended in status.json before exiting.
/// </summary>
internal sealed class VmHost : IVmEventSink, IDisposable
{
    private readonly VmPaths _paths;
    private readonly HostLog _log = new();
    private readonly object _gate = new();
    private readonly TaskCompletionSource<VmStatus> _final = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _shutdown = new();
    private VmStatus _status;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private StreamWriter? _console;
    private string? _stopReason;
    private string? _failReason;

    public VmHost(VmPaths paths)
    {
        _paths = paths;
        _status = new VmStatus { State = VmState.Starting, HostProcessId = Environment.ProcessId };
    }

    internal IVirtualMachine? Machine { get; private set; }

    internal GuestAgentChannel? Agent { get; private set; }

    internal NetworkRelay? Relay { get; private set; }

    private readonly SemaphoreSlim _networkChange = new(1, 1);

    internal VmConfiguration Config { get; private set; } = null!;

    internal HostLog Log => _log;

    /// <summary>Screenshots for the control socket and the HTTP endpoint.</summary>
    internal ScreenshotService Screenshots { get; private set; } = null!;

    /// <summary>The final status, once the hypervisor has exited and it is recorded.</summary>
    internal Task<VmStatus> Final => _final.Task;

    internal VmStatus Status
    {
        get { lock (_gate) return _status; }
    }

    internal VmStatus Update(Func<VmStatus, VmStatus> change)
    {
        lock (_gate)
        {
            // Terminal states are final: a late event must not revive a stopped VM.
            if (_status.IsTerminal && _final.Task.IsCompleted) return _status;
            _status = change(_status) with { UpdatedUtc = DateTimeOffset.UtcNow };
            VmStore.WriteStatus(_paths, _status);
            _changed.TrySetResult();
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
            return _status;
        }
    }

    /// <summary>Returns the status as soon as it satisfies <paramref name="condition"/>, or when the timeout passes.</summary>
    internal async Task<VmStatus> WaitForAsync(Func<VmStatus, bool> condition, TimeSpan timeout, CancellationToken ct)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timer.CancelAfter(timeout);
        while (true)
        {
            Task changed;
            VmStatus status;
            lock (_gate)
            {
                status = _status;
                changed = _changed.Task;
            }
            if (condition(status) || Final.IsCompleted) return status;
            try
            {
                await changed.WaitAsync(timer.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                return Status;
            }
        }
    }

    public async Task<int> RunAsync()
    {
        _log.Write($"MacVm.Host {typeof(VmHost).Assembly.GetName().Version} pid {Environment.ProcessId} for '{_paths.Directory}'");
        ControlServer? server = null;
        ScreenshotServer? endpoint = null;
        Screenshots = new ScreenshotService(this);
        try
        {
            // Serve first, before anything else: the engine connects at once and waits for the boot while
            // its connection is set up beside the manifest reading and the hypervisor's start. Until then
            // every answer says Starting.
            VmStore.CreatePrivateDirectory(_paths.SocketDirectory);
            server = new ControlServer(_paths.ControlSocket, new HostControlService(this), _log);
            server.Start();
            Config = ModelJson.Deserialize<VmConfiguration>(File.ReadAllText(_paths.Manifest), $"The manifest '{_paths.Manifest}'");
            // A machine state is loaded once: a later start must boot the disk as it is then.
            var restore = Config.Restore;
            if (restore is not null) VmStore.WriteVm(_paths, Config with { Restore = null });
            AtomicFile.WriteAllText(_paths.HostPid, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            _console = new StreamWriter(new FileStream(_paths.ConsoleLog, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };

            // The hypervisor first: the guest boots while the host does its bookkeeping.
            Machine = DriverRegistry.Get(Config.Driver).Create(Config, _paths, this);
            var starting = Machine.StartAsync(restore, _shutdown.Token);
            Update(s => s); // records Starting with our pid (the initial status)
            if (Config.ScreenshotPort is { } screenshotPort) endpoint = StartScreenshotEndpoint(screenshotPort);
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                _log.Write("SIGTERM: stopping the VM");
                _ = StopAsync(force: false, TimeSpan.FromSeconds(30));
            });
            var restored = false;
            try
            {
                await starting.ConfigureAwait(false);
                restored = restore is not null;
            }
            catch (RestoreFailedException ex) when (restore is not null && !restore.NoFallback)
            {
                // As the seed does: a state that does not load falls back to a cold boot of the same disk.
                _log.Write($"Restore failed, cold-booting instead: {ex.Message}");
                await Machine.DisposeAsync().ConfigureAwait(false);
                Machine = DriverRegistry.Get(Config.Driver).Create(Config, _paths, this);
                Update(s => s with { RestoreFallbackReason = ex.Message });
                await Machine.StartAsync(null, _shutdown.Token).ConfigureAwait(false);
            }
            Relay = new NetworkRelay(Machine, _log);
            await AttachAtStartAsync().ConfigureAwait(false);
            _ = Task.Run(() => Machine.ServeGuestIpAsync(new GuestIpService(this), _shutdown.Token));
            Update(s => s with
            {
                State = VmState.Running,
                HypervisorProcessId = Machine.HypervisorProcessId,
                Accelerator = Machine.Accelerator,
                StartedUtc = DateTimeOffset.UtcNow,
                // A restored guest is up the moment its CPUs run.
                RestoredFrom = restored ? restore!.Snapshot : null,
                GuestBooted = s.GuestBooted || restored,
            });
            if (Config.Boot.GuestAgent)
            {
                Agent = new GuestAgentChannel(Machine.ConnectGuestAgentAsync);
                _ = Task.Run(WaitForAgentAsync);
            }
            _ = Task.Run(BootWatchdogAsync);

            var exit = await Machine.Exited.ConfigureAwait(false);
            _log.Write($"Hypervisor ended: {exit.Description}");
            var final = Update(s => s with
            {
                State = _failReason is null && (_stopReason is not null || exit.GuestShutdown) ? VmState.Stopped : VmState.Failed,
                Reason = _failReason ?? _stopReason ?? (exit.GuestShutdown ? "The guest shut down." : $"The hypervisor ended unexpectedly: {exit.Description}"),
                HypervisorProcessId = null,
                ScreenshotPort = null,
            });
            _final.TrySetResult(final);
            _log.Write($"Final state {final.State}: {final.Reason}");
            // Let a Stop caller read its answer before the socket goes away (a caller that misses
            // it reads the same final status from status.json).
            await Task.Delay(25).ConfigureAwait(false);
            return final.State == VmState.Stopped ? 0 : 1;
        }
        catch (Exception ex)
        {
            _log.Write($"Host failed: {ex}");
            var failed = Update(s => s with { State = VmState.Failed, Reason = ex.Message, HypervisorProcessId = null, ScreenshotPort = null });
            _final.TrySetResult(failed);
            Machine?.Kill();
            return 1;
        }
        finally
        {
            _shutdown.Cancel();
            if (server is not null) await server.DisposeAsync().ConfigureAwait(false);
            if (endpoint is not null) await endpoint.DisposeAsync().ConfigureAwait(false);
            if (Config?.ScreenshotPort is not null) AtomicFile.TryDelete(_paths.ScreenshotToken);
            if (Agent is not null) await Agent.DisposeAsync().ConfigureAwait(false);
            if (Relay is not null) await Relay.DisposeAsync().ConfigureAwait(false);
            if (Machine is not null) await Machine.DisposeAsync().ConfigureAwait(false);
            _console?.Dispose();
            AtomicFile.TryDelete(_paths.HostPid);
            _log.Write("Host exits.");
        }
    }

    /// <summary>
    /// Writes a new token (0600, in the 0700 VM folder) and opens the HTTP endpoint; its port goes into the status.
    /// A port that cannot be bound fails the host, and so the start, with the reason.
    /// </summary>
    private ScreenshotServer StartScreenshotEndpoint(int port)
    {
        var token = Engine.Screenshots.ScreenshotToken.New();
        AtomicFile.WriteAllBytes(_paths.ScreenshotToken, System.Text.Encoding.UTF8.GetBytes(token), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var endpoint = ScreenshotServer.Start(port, Config.Name, token,
            (full, ct) => Screenshots.TakeAsync(new ScreenshotRequest { Full = full }, ct),
            () => Status.State is VmState.Running or VmState.Paused ? null : $"VM '{Config.Name}' is {Status.State}: there is no display to capture.",
            _log);
        _log.Write($"Screenshot endpoint on http://127.0.0.1:{endpoint.Port}{Engine.Screenshots.ScreenshotEndpoint.Path} (token in {_paths.ScreenshotToken}).");
        Update(s => s with { ScreenshotPort = endpoint.Port });
        return endpoint;
    }

    /// <summary>
    /// Plugs the NIC in where vm.json says (a restore: where the restore asked). A network that is gone
    /// by now leaves the VM running unplugged, with the reason in the log and the status.
    /// </summary>
    private async Task AttachAtStartAsync()
    {
        var wanted = Config.Network ?? NetworkAttachment.None;
        try
        {
            await Relay!.AttachAsync(wanted, Engine.Operations.NetworkRules.DefaultClientId(Config), _shutdown.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _log.Write($"Network: could not attach to {wanted} at start ({ex.Message}); the NIC stays unplugged.");
            await Relay!.AttachAsync(NetworkAttachment.None, "", _shutdown.Token).ConfigureAwait(false);
        }
        var current = Relay.Current with { ClientSocketPath = Relay.ClientSocketPath };
        Update(s => s with { Network = current });
    }

    /// <summary>Re-plugs the NIC and records the new attachment in vm.json (the next start and a save use it).</summary>
    internal async Task<VmStatus> SetNetworkAsync(NetworkAttachment attachment, CancellationToken ct)
    {
        await _networkChange.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await Relay!.AttachAsync(attachment, Engine.Operations.NetworkRules.DefaultClientId(Config), ct).ConfigureAwait(false);
            Config = Config with { Network = attachment.Kind == NetworkKind.None ? null : attachment with { ClientSocketPath = null } };
            VmStore.WriteVm(_paths, Config);
            var current = Relay.Current with { ClientSocketPath = Relay.ClientSocketPath };
            return Update(s => s with { Network = current });
        }
        finally
        {
            _networkChange.Release();
        }
    }

    /// <summary>Serves <paramref name="config"/> to the guest from now on (null: tell it to wait), with the VM's MAC.</summary>
    internal VmStatus SetGuestIp(GuestIpConfiguration? config)
    {
        var served = config is null ? null : config with { MacAddress = config.MacAddress ?? Config.MacAddress };
        _log.Write(served is null ? "Guest IP: serving 'wait'." : $"Guest IP: serving {served}.");
        return Update(s => s with { GuestIpServed = served });
    }

    /// <summary>Stops the VM (graceful unless <paramref name="force"/>) and returns the final status.</summary>
    internal async Task<VmStatus> StopAsync(bool force, TimeSpan timeout)
    {
        var machine = Machine;
        if (machine is null || Final.IsCompleted) return await Final.ConfigureAwait(false);
        lock (_gate) _stopReason ??= force ? "Stopped by force (Stop-MacVm -Force)." : "Stopped (Stop-MacVm).";
        if (force)
        {
            machine.Kill();
            return await Final.ConfigureAwait(false);
        }
        Update(s => s with { State = VmState.Stopping });
        try
        {
            // The power button for guests that handle ACPI, and the agent for those that do not.
            await machine.RequestShutdownAsync(_shutdown.Token).ConfigureAwait(false);
            if (Agent is not null && Status.GuestAgentReady)
                await Agent.RequestShutdownAsync(TimeSpan.FromSeconds(2), _shutdown.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _log.Write($"Graceful stop request failed ({ex.Message}); will kill after the timeout.");
        }
        var exited = await Task.WhenAny(machine.Exited, Task.Delay(timeout)).ConfigureAwait(false);
        if (exited != machine.Exited)
        {
            _log.Write($"The guest did not shut down within {timeout.TotalSeconds:0.#} s; killing the hypervisor.");
            lock (_gate) _stopReason = $"Killed after the guest did not shut down within {timeout.TotalSeconds:0.#} s.";
            machine.Kill();
        }
        return await Final.ConfigureAwait(false);
    }

    private readonly TaskCompletionSource _clockSettled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Completes once a restored guest's clock is set (or could not be), at once for any other guest: the
    /// clock resumes from the save, and a script must not run with it (a TLS check would fail, say).
    /// </summary>
    internal Task GuestClockSettled => _clockSettled.Task;

    /// <summary>
    /// Waits for the agent's first answer, then, for a restored guest, sets its clock (it resumes from the
    /// save). Pings need no clock and go on meanwhile; scripts wait for it (<see cref="GuestClockSettled"/>).
    /// </summary>
    private async Task WaitForAgentAsync()
    {
        var restored = Status.RestoredFrom is not null;
        if (!restored) _clockSettled.TrySetResult();
        try
        {
            if (!await PingUntilAnsweredAsync().ConfigureAwait(false) || !restored) return;
            try
            {
                var reply = await SetGuestClockAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
                _log.Write(reply == "ok" ? "Guest clock set to the host's time." : $"Could not set the guest clock: {reply}");
            }
            catch (Exception ex) when (ex is TimeoutException or IOException)
            {
                _log.Write($"Could not set the guest clock: {ex.Message}");
            }
        }
        catch (OperationCanceledException)
        {
            // The host is stopping.
        }
        finally
        {
            // Set or not, scripts wait no longer (a guest that cannot set its clock says so in the log).
            _clockSettled.TrySetResult();
        }
    }

    /// <summary>Pings the agent every 50 ms until it answers, then records it ready; false when the VM ended first.</summary>
    private async Task<bool> PingUntilAnsweredAsync()
    {
        while (!_shutdown.IsCancellationRequested && !Final.IsCompleted)
        {
            try
            {
                var (_, rtt) = await Agent!.PingAsync(TimeSpan.FromMilliseconds(500), _shutdown.Token).ConfigureAwait(false);
                _log.Write($"Guest agent answered (round trip {rtt.TotalMilliseconds:0.0} ms).");
                Update(s => s with { GuestAgentReady = true, GuestBooted = true });
                return true;
            }
            catch (Exception ex) when (ex is TimeoutException or IOException)
            {
                await Task.Delay(50).ConfigureAwait(false);
            }
        }
        return false;
    }

    /// <summary>Sends the host's time to the guest agent (<c>time</c>); returns its reply (ok, or error and why).</summary>
    private Task<string> SetGuestClockAsync(TimeSpan timeout)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        return Agent!.RequestAsync(FormattableString.Invariant($"time {now:0.000}"), r => r == "ok" || r.StartsWith("error", StringComparison.Ordinal), timeout, _shutdown.Token);
    }

    private readonly SemaphoreSlim _saving = new(1, 1);

    /// <summary>Saves the machine; a second save waits for the first (no torn snapshot).</summary>
    internal async Task<SaveResult> SaveAsync(IVirtualMachine machine, SaveRequest request, CancellationToken ct)
    {
        await _saving.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var wasPaused = Status.State == VmState.Paused;
            SavedMachine saved;
            try
            {
                saved = await machine.SaveAsync(request.StateFile, request.NewActiveDisk, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _log.Write($"Save failed: {ex.Message}");
                // A partial state is garbage, and on a full disk it holds the space the manifest needs
                // (the engine deletes the whole staging folder too; this frees the space at once).
                AtomicFile.TryDelete(request.StateFile);
                try { RecordActiveDisk(request.NewActiveDisk); }
                catch (IOException io) { _log.Write($"Could not record the new disk layer in vm.json: {io.Message}"); }
                // A failed save must not leave the guest paused.
                if (!wasPaused) await machine.ResumeAsync(CancellationToken.None).ConfigureAwait(false);
                throw new LocalRpcException($"The save failed: {ex.Message}") { ErrorCode = HostErrorCodes.SaveFailed };
            }
            RecordActiveDisk(request.NewActiveDisk);
            if (!request.LeavePaused && !wasPaused) await machine.ResumeAsync(ct).ConfigureAwait(false);
            return new SaveResult { FrozenDisk = saved.FrozenDisk, PausedMs = sw.Elapsed.TotalMilliseconds, Files = saved.Files };
        }
        finally
        {
            _saving.Release();
        }
    }

    /// <summary>
    /// Once a disk layer is frozen the VM writes to the new one, whether or not the state was written:
    /// vm.json must say so, or the next cold start would lose those writes.
    /// </summary>
    private void RecordActiveDisk(string newActiveDisk)
    {
        var newDisk = Path.GetFileName(newActiveDisk);
        if (!File.Exists(newActiveDisk) || Config.Boot.DiskFile == newDisk) return;
        Config = Config with { Boot = Config.Boot with { DiskFile = newDisk } };
        VmStore.WriteVm(_paths, Config);
    }

    private async Task BootWatchdogAsync()
    {
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(Config.BootTimeoutSeconds), _shutdown.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        if (Status.GuestBooted || Final.IsCompleted) return;
        var accel = Machine?.Accelerator ?? "?";
        var hint = accel == "tcg"
            ? "Check the image's kernel command line (console=ttyS0) and the console log."
            : Engine.Drivers.Qemu.QemuDriver.AcceleratorHint(accel).TrimStart();
        lock (_gate)
            _failReason = $"Boot watchdog: the guest showed no sign of life (no console output, no agent answer) within {Config.BootTimeoutSeconds} s with accelerator '{accel}'. {hint}";
        _log.Write(_failReason);
        Machine?.Kill();
    }

    public void ConsoleLine(string line)
    {
        _console?.WriteLine(line);
        if (!Status.GuestBooted)
        {
            _log.Write($"First console output: {line}");
            Update(s => s with { GuestBooted = true });
        }
        if (Config.Boot.ReadyMarker is { } marker && line.Contains(marker, StringComparison.Ordinal))
            _log.Write($"Guest ready marker seen: {line}");
    }

    void IVmEventSink.Log(string message) => _log.Write(message);

    public void Dispose()
    {
        _saving.Dispose();
        _networkChange.Dispose();
        _shutdown.Dispose();
        _console?.Dispose();
    }
}

/// <summary>Timestamped lines on standard output, which is host.log once the host detaches.</summary>
internal sealed class HostLog
{
    private readonly object _gate = new();

    public void Write(string message)
    {
        lock (_gate)
        {
            try
            {
                Console.Out.WriteLine($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {message}");
                Console.Out.Flush();
            }
            catch (IOException)
            {
                // A full disk must not turn a logged failure into another one: the line is lost, the
                // operation's own error still reaches the caller.
            }
        }
    }
}
