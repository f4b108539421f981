using System.Text.RegularExpressions;
using MacVm.Engine.Drivers;
using MacVm.Engine.HostProtocol;
using MacVm.Engine.Platform;
using MacVm.Engine.Screenshots;
using MacVm.Engine.Store;

namespace MacVm.Engine.Operations;

/// <summary>What New-MacVm asks for.</summary>
public sealed record NewVmRequest
{
    /// <summary>The new VM's name.</summary>
    public required string Name { get; init; }
    /// <summary>The image to make it from.</summary>
    public required string Image { get; init; }
    /// <summary>The driver.</summary>
    public VmDriverKind Driver { get; init; } = DriverRegistry.DefaultKind;
    /// <summary>Virtual CPUs.</summary>
    public int CpuCount { get; init; } = 1;
    /// <summary>Memory in MiB.</summary>
    public int MemoryMB { get; init; } = 256;
    /// <summary>The accelerator.</summary>
    public VmAccelerator Accelerator { get; init; } = VmAccelerator.Auto;
    /// <summary>Seconds the guest has to show a sign of life.</summary>
    public int BootTimeoutSeconds { get; init; } = 60;
    /// <summary>Extra kernel command-line words.</summary>
    public string? ExtraKernelArguments { get; init; }
    /// <summary>Make the VM but do not start it.</summary>
    public bool NoStart { get; init; }
    /// <summary>The screenshot endpoint's loopback port: null for none, 0 for a free one.</summary>
    public int? ScreenshotPort { get; init; }
    /// <summary>Where the NIC is plugged in at start (default: unplugged).</summary>
    public NetworkAttachment? Network { get; init; }
}

/// <summary>Conditions Wait-MacVm can wait for besides a state.</summary>
public enum VmWaitCondition
{
    /// <summary>The guest showed a sign of life (console output or an agent answer).</summary>
    GuestBooted,
    /// <summary>The guest agent answered.</summary>
    GuestAgentReady,
    /// <summary>The guest applied and acknowledged the IP configuration the host serves (Set-MacVmGuestIp).</summary>
    GuestIpAssigned,
}

/// <summary>
/// The VM operations behind the cmdlets. Stateless apart from the store on disk, so one instance
/// may serve many threads and processes at once; per-VM changes take a lock file in the VM folder.
/// </summary>
public sealed class VmManager
{
    /// <summary>Most virtual CPUs a VM may have.</summary>
    public const int MaxCpuCount = 64;
    /// <summary>Least memory in MiB.</summary>
    public const int MinMemoryMB = 64;
    /// <summary>Most memory in MiB.</summary>
    public const int MaxMemoryMB = 1024 * 1024;

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);
    private static int s_activityIds;

    /// <summary>Works on <paramref name="store"/>.</summary>
    public VmManager(VmStore store) => Store = store;

    /// <summary>The store.</summary>
    public VmStore Store { get; }

    /// <summary>Names of the VMs that match any of <paramref name="patterns"/> (wildcards * ? [..]), and the patterns without wildcards that matched nothing.</summary>
    public (IReadOnlyList<string> Names, IReadOnlyList<string> Missing) Resolve(IEnumerable<string>? patterns) =>
        WildcardNames.Resolve(Store.VmNames(), patterns);

    /// <summary>Makes a VM from an image and (unless <see cref="NewVmRequest.NoStart"/>) boots it.</summary>
    public async Task<MacVm> CreateAsync(NewVmRequest request, IOperationReporter reporter, CancellationToken ct)
    {
        NameRules.Validate("VM", request.Name, nameof(request.Name));
        if (request.CpuCount is < 1 or > MaxCpuCount)
            throw new ArgumentOutOfRangeException(nameof(request.CpuCount), request.CpuCount, $"CpuCount {request.CpuCount} is out of range: give 1 to {MaxCpuCount}.");
        if (request.MemoryMB is < MinMemoryMB or > MaxMemoryMB)
            throw new ArgumentOutOfRangeException(nameof(request.MemoryMB), request.MemoryMB, $"MemoryMB {request.MemoryMB} is out of range: give {MinMemoryMB} to {MaxMemoryMB} MiB.");
        var hostMemoryMB = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024 * 1024);
        if (hostMemoryMB > 0 && request.MemoryMB > hostMemoryMB)
            throw new ArgumentOutOfRangeException(nameof(request.MemoryMB), request.MemoryMB, $"MemoryMB {request.MemoryMB} is more than this machine's {hostMemoryMB} MiB. Give less.");
        if (request.BootTimeoutSeconds is < 1 or > 3600)
            throw new ArgumentOutOfRangeException(nameof(request.BootTimeoutSeconds), request.BootTimeoutSeconds, "BootTimeoutSeconds must be 1 to 3600.");
        ScreenshotEndpoint.ValidatePort(request.ScreenshotPort);

        var network = request.Network is null ? null : NetworkRules.Validate(request.Network);
        var driver = DriverRegistry.Get(request.Driver);
        driver.CheckAvailable(request.Accelerator);
        Store.EnsureWritable();
        var image = Store.ReadImage(request.Image) ?? throw MacVmException.ImageNotFound(request.Image, Store.Root);
        if (image.Kind == ImageKind.MacOS && request.Driver != VmDriverKind.Apple)
            throw new ArgumentException($"Image '{image.Name}' is a macOS guest: it runs only with -Driver Apple (Virtualization.framework, macOS on Apple silicon).", nameof(request.Driver));
        var final = Store.Vm(request.Name);
        if (Directory.Exists(final.Directory))
            throw NameTaken(request.Name);
        if (!request.NoStart) ScreenshotEndpoint.CheckPortFree(request.ScreenshotPort, request.Name);

        var activity = Interlocked.Increment(ref s_activityIds);
        reporter.Progress(new OperationProgress(activity, $"Creating VM {request.Name}", "Cloning the image disk", 10));
        // Build in a hidden folder and rename it into place, so a failure leaves nothing behind
        // and no other process ever sees a half-made VM.
        var staging = Path.Combine(Store.VmsDirectory, $".new-{request.Name}-{Guid.NewGuid():N}");
        VmStore.CreatePrivateDirectory(staging);
        try
        {
            string? diskFile = null;
            if (image.Disk is { } disk)
            {
                // QEMU: a qcow2 overlay on the image; Apple: a copy-on-write clone of the raw disk.
                diskFile = request.Driver == VmDriverKind.Apple ? "disk.img" : "disk.qcow2";
                await driver.CloneDiskAsync(Path.Combine(image.Path!, disk), image.DiskFormat ?? "raw", Path.Combine(staging, diskFile), ct).ConfigureAwait(false);
            }
            MacPlatformSpec? macPlatform = null;
            if (image.Kind == ImageKind.MacOS)
            {
                // The guest writes its NVRAM: each VM gets its own clone of the image's.
                await driver.CloneDiskAsync(Path.Combine(image.Path!, image.AuxiliaryStorage!), "raw", Path.Combine(staging, "auxiliary-storage"), ct).ConfigureAwait(false);
                macPlatform = new MacPlatformSpec
                {
                    HardwareModelPath = Path.Combine(image.Path!, image.HardwareModel!),
                    MachineIdentifierPath = Path.Combine(image.Path!, image.MachineIdentifier!),
                    AuxiliaryStorageFile = "auxiliary-storage",
                };
            }
            var config = new VmConfiguration
            {
                Name = request.Name,
                Driver = request.Driver,
                Image = image.Name,
                ImageDigest = image.Digest,
                CpuCount = request.CpuCount,
                MemoryMB = request.MemoryMB,
                Accelerator = request.Accelerator,
                BootTimeoutSeconds = request.BootTimeoutSeconds,
                ExtraKernelArguments = request.ExtraKernelArguments,
                ScreenshotPort = request.ScreenshotPort,
                Network = network is { Kind: not NetworkKind.None } ? network : null,
                MacAddress = GuestIpRules.NewMacAddress(),
                Boot = new BootSpec
                {
                    KernelPath = image.Kernel is null ? null : Path.Combine(image.Path!, image.Kernel),
                    InitrdPath = image.Initrd is null ? null : Path.Combine(image.Path!, image.Initrd),
                    KernelCommandLine = image.KernelCommandLine,
                    DiskFile = diskFile,
                    GuestAgent = image.GuestAgent,
                    ReadyMarker = image.ReadyMarker,
                    MacPlatform = macPlatform,
                },
            };
            // Apple: the NIC's MAC is part of a saved state, so it is fixed once, here, and snapshots keep it.
            if (request.Driver == VmDriverKind.Apple) config = config with { MacAddress = Drivers.Apple.VzConfigurationBuilder.MacAddressOf(config) };
            AtomicFile.WriteAllText(Path.Combine(staging, "vm.json"), ModelJson.Serialize(config));
            try
            {
                Directory.Move(staging, final.Directory);
            }
            catch (IOException) when (Directory.Exists(final.Directory))
            {
                throw NameTaken(request.Name);
            }
        }
        catch
        {
            TryDeleteDirectory(staging);
            throw;
        }

        reporter.Verbose($"Made VM '{request.Name}' in '{final.Directory}' from image '{image.Name}' ({image.ShortDigest}).");
        if (request.NoStart)
        {
            reporter.Progress(new OperationProgress(activity, $"Creating VM {request.Name}", "Done", 100, Completed: true));
            return await GetAsync(request.Name, ct).ConfigureAwait(false);
        }
        try
        {
            return await StartAsync(request.Name, reporter, activity, ct).ConfigureAwait(false);
        }
        catch
        {
            // New-MacVm either gives a running VM or nothing: a VM that never booted is removed, so
            // that retrying with a fix (another accelerator, say) does not hit "name taken".
            await RemoveAsync(request.Name, force: true, NullReporter.Instance, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    private static MacVmException NameTaken(string name) =>
        new(MacVmErrorKind.AlreadyExists, "NameTaken", $"A VM named '{name}' already exists. Choose another name, or remove it first with Remove-MacVm -Name {name}.", name);

    /// <summary>The VM with its live state.</summary>
    public async Task<MacVm> GetAsync(string name, CancellationToken ct)
    {
        var config = ReadConfig(name);
        var paths = Store.Vm(name);
        return new MacVm(config, await QueryStatusAsync(paths, ct).ConfigureAwait(false), paths.Directory);
    }

    private VmConfiguration ReadConfig(string name)
    {
        if (NameRules.Check("VM", name) is not null) throw MacVmException.VmNotFound(name, Store.Root);
        try
        {
            return Store.ReadVm(name) ?? throw MacVmException.VmNotFound(name, Store.Root);
        }
        catch (InvalidDataException ex)
        {
            throw new MacVmException(MacVmErrorKind.Damaged, "ManifestDamaged", ex.Message + " Remove the VM with Remove-MacVm -Force.", name, ex);
        }
    }

    /// <summary>
    /// The live status: asked of the host when one answers; otherwise derived from status.json and
    /// whether the host process still exists. A host that vanished while the VM ran is Failed, never Running.
    /// </summary>
    public static async Task<VmStatus> QueryStatusAsync(VmPaths paths, CancellationToken ct)
    {
        var client = await HostClient.TryConnectAsync(paths.ControlSocket, ct).ConfigureAwait(false);
        if (client is not null)
        {
            await using (client.ConfigureAwait(false))
            {
                try
                {
                    return await client.GetStatusAsync(ct).ConfigureAwait(false);
                }
                catch (MacVmException)
                {
                    // The host went away between connect and answer: judge from the files below.
                }
            }
        }
        var recorded = VmStore.ReadStatus(paths);
        var pid = VmStore.ReadHostPid(paths);
        var hostAlive = pid is { } p && IsOurHost(p, paths);
        if (recorded is null)
            return hostAlive ? new VmStatus { State = VmState.Starting, HostProcessId = pid } : new VmStatus { State = VmState.Stopped };
        if (recorded.IsTerminal) return recorded;
        if (hostAlive)
            return recorded; // Starting, or a host too busy to answer; its own status still stands.
        return recorded with
        {
            State = VmState.Failed,
            Reason = $"The host process (pid {recorded.HostProcessId?.ToString() ?? "?"}) is gone without recording why (was it killed?). Its hypervisor died with it.",
            UpdatedUtc = DateTimeOffset.UtcNow,
        };
    }

    /// <summary>True when <paramref name="pid"/> is a live MacVm host for this VM folder (not a reused pid).</summary>
    public static bool IsOurHost(int pid, VmPaths paths)
    {
        if (!Posix.ProcessExists(pid)) return false;
        // Without /proc (macOS) existence is all we can tell.
        if (!OperatingSystem.IsLinux()) return true;
        // Gone (or a zombie, whose command line is empty) between the two checks: not a live host.
        var cmdline = Posix.ProcessCommandLine(pid);
        return cmdline is not null && cmdline.Contains("MacVm.Host", StringComparison.Ordinal) && cmdline.Contains(paths.Directory, StringComparison.Ordinal);
    }

    /// <summary>Starts a stopped (or failed) VM and waits until the guest shows a sign of life.</summary>
    public Task<MacVm> StartAsync(string name, IOperationReporter reporter, CancellationToken ct) =>
        StartAsync(name, reporter, Interlocked.Increment(ref s_activityIds), ct);

    private async Task<MacVm> StartAsync(string name, IOperationReporter reporter, int activity, CancellationToken ct)
    {
        var config = ReadConfig(name);
        var paths = Store.Vm(name);
        var title = $"Starting VM {name}";
        using (await VmLock.AcquireAsync(paths, ct).ConfigureAwait(false))
        {
            var status = await QueryStatusAsync(paths, ct).ConfigureAwait(false);
            if (!status.IsTerminal)
            {
                reporter.Verbose($"VM '{name}' is already {status.State}.");
                return new MacVm(config, status, paths.Directory);
            }
            DriverRegistry.Get(config.Driver).CheckAvailable(config.Accelerator);
            ScreenshotEndpoint.CheckPortFree(config.ScreenshotPort, name);
            CleanUpLeftovers(paths);
            reporter.Progress(new OperationProgress(activity, title, "Starting the host process", 30));
            var hypervisor = DriverRegistry.Get(config.Driver).PrepareLaunch(config, paths);
            var client = await HostLauncher.LaunchAsync(paths, hypervisor, ct).ConfigureAwait(false);
            await using (client.ConfigureAwait(false))
            {
                reporter.Progress(new OperationProgress(activity, title, "Waiting for the guest to boot", 60));
                while (true)
                {
                    VmStatus live;
                    try
                    {
                        // The host answers as soon as the guest shows a sign of life: no polling.
                        live = await client.WaitForBootAsync(1000, ct).ConfigureAwait(false);
                    }
                    catch (MacVmException)
                    {
                        live = await QueryStatusAsync(paths, ct).ConfigureAwait(false);
                    }
                    if (live.State == VmState.Failed || live.IsTerminal)
                        throw new MacVmException(MacVmErrorKind.HostFailed, "BootFailed",
                            $"VM '{name}' did not start: {live.Reason ?? live.State.ToString()} {HostLauncher.LogTail(paths)}", name);
                    if (live.GuestBooted && live.State is VmState.Running or VmState.Paused)
                    {
                        // The network may be gone since it was checked: the VM then runs unplugged, and says so.
                        var wanted = config.Network?.Kind ?? NetworkKind.None;
                        if (live.Network is { } plugged && plugged.Kind != wanted)
                            reporter.Warning($"VM '{name}' could not be plugged into {config.Network} and runs unplugged; see {paths.HostLog}. Use Connect-MacVmNetwork once the network is there.");
                        reporter.Progress(new OperationProgress(activity, title, "Running", 100, Completed: true));
                        return new MacVm(config, live, paths.Directory);
                    }
                    await Task.Delay(PollInterval, ct).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Stops a VM: asks the guest to shut down and waits up to <paramref name="timeout"/>, then kills; or kills at once with <paramref name="force"/>.</summary>
    public async Task<MacVm> StopAsync(string name, bool force, TimeSpan timeout, IOperationReporter reporter, CancellationToken ct)
    {
        var config = ReadConfig(name);
        var paths = Store.Vm(name);
        var client = await HostClient.TryConnectAsync(paths.ControlSocket, ct).ConfigureAwait(false);
        if (client is null)
        {
            CleanUpLeftovers(paths);
            reporter.Verbose($"VM '{name}' has no running host; nothing to stop.");
            return await GetAsync(name, ct).ConfigureAwait(false);
        }
        await using (client.ConfigureAwait(false))
        {
            var hostPid = VmStore.ReadHostPid(paths);
            var activity = Interlocked.Increment(ref s_activityIds);
            reporter.Progress(new OperationProgress(activity, $"Stopping VM {name}", force ? "Killing the hypervisor" : "Waiting for the guest to shut down"));
            VmStatus status;
            try
            {
                status = await client.StopAsync(new StopRequest { Force = force, TimeoutMs = (int)timeout.TotalMilliseconds }, ct).ConfigureAwait(false);
            }
            catch (MacVmException ex) when (ex.Problem == "HostGone")
            {
                // The host exits right after answering; losing the race to read its answer is fine.
                status = await QueryStatusAsync(paths, ct).ConfigureAwait(false);
            }
            reporter.Progress(new OperationProgress(activity, $"Stopping VM {name}", "Stopped", 100, Completed: true));
            await WaitForHostExitAsync(hostPid, paths, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
            return new MacVm(config, status, paths.Directory);
        }
    }

    /// <summary>Waits until host process <paramref name="pid"/> (read before asking it to stop: it deletes its pid file on the way out) is gone.</summary>
    private static async Task WaitForHostExitAsync(int? pid, VmPaths paths, TimeSpan timeout, CancellationToken ct)
    {
        if (pid is null) return;
        var deadline = DateTime.UtcNow + timeout;
        while (IsOurHost(pid.Value, paths) && DateTime.UtcNow < deadline)
            await Task.Delay(PollInterval, ct).ConfigureAwait(false);
    }

    /// <summary>Pauses the guest's CPUs.</summary>
    public Task<MacVm> SuspendAsync(string name, CancellationToken ct) => WithHostAsync(name, (c, t) => c.PauseAsync(t), ct);

    /// <summary>Resumes the guest's CPUs.</summary>
    public Task<MacVm> ResumeAsync(string name, CancellationToken ct) => WithHostAsync(name, (c, t) => c.ResumeAsync(t), ct);

    /// <summary>A round trip through the guest agent.</summary>
    public async Task<GuestPingResult> PingGuestAsync(string name, TimeSpan timeout, CancellationToken ct)
    {
        ReadConfig(name);
        var client = await ConnectRunningAsync(name, ct).ConfigureAwait(false);
        await using (client.ConfigureAwait(false))
            return await client.PingGuestAsync((int)timeout.TotalMilliseconds, ct).ConfigureAwait(false);
    }

    /// <summary>Runs a shell script in the guest through its agent.</summary>
    public async Task<GuestCommandResult> RunInGuestAsync(string name, string script, TimeSpan timeout, CancellationToken ct)
    {
        ReadConfig(name);
        var client = await ConnectRunningAsync(name, ct).ConfigureAwait(false);
        await using (client.ConfigureAwait(false))
            return await client.RunInGuestAsync(script, (int)timeout.TotalMilliseconds, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Captures the display of a running or paused VM in its host (which encodes it) and returns the picture,
    /// or writes it to <paramref name="path"/> (atomically: a failure leaves no partial file) when one is given.
    /// </summary>
    public async Task<MacVmScreenshot> ScreenshotAsync(string name, ScreenshotRequest request, string? path, CancellationToken ct)
    {
        ScreenshotSettings.ResolveQuality(request.Full, request.Quality);
        ReadConfig(name);
        var client = await ConnectRunningAsync(name, ct).ConfigureAwait(false);
        MacVmScreenshot shot;
        await using (client.ConfigureAwait(false))
            shot = await client.ScreenshotAsync(request, ct).ConfigureAwait(false);
        if (path is null) return shot;
        AtomicFile.WriteAllBytes(path, shot.Data ?? []);
        return shot with { Data = null, Path = path };
    }

    /// <summary>
    /// Plugs the VM's NIC into <paramref name="attachment"/>: at once when it runs (the guest keeps its NIC;
    /// only what is behind it changes), else at its next start. Checked before anything changes.
    /// </summary>
    public async Task<MacVm> SetNetworkAsync(string name, NetworkAttachment attachment, CancellationToken ct)
    {
        var config = ReadConfig(name);
        var checkedAttachment = NetworkRules.Validate(attachment);
        var paths = Store.Vm(name);
        using (await VmLock.AcquireAsync(paths, ct).ConfigureAwait(false))
        {
            var client = await HostClient.TryConnectAsync(paths.ControlSocket, ct).ConfigureAwait(false);
            if (client is null)
            {
                config = config with { Network = checkedAttachment.Kind == NetworkKind.None ? null : checkedAttachment };
                VmStore.WriteVm(paths, config);
                return new MacVm(config, await QueryStatusAsync(paths, ct).ConfigureAwait(false), paths.Directory);
            }
            await using (client.ConfigureAwait(false))
            {
                var status = await client.SetNetworkAsync(checkedAttachment, ct).ConfigureAwait(false);
                return new MacVm(ReadConfig(name), status, paths.Directory);
            }
        }
    }

    /// <summary>
    /// Serves <paramref name="config"/> to the guest's IP agent (null: tell it to wait); with <paramref name="wait"/>,
    /// returns once the guest has applied and acknowledged it.
    /// </summary>
    public async Task<MacVm> SetGuestIpAsync(string name, GuestIpConfiguration? config, TimeSpan? wait, CancellationToken ct)
    {
        var vmConfig = ReadConfig(name);
        var client = await ConnectRunningAsync(name, ct).ConfigureAwait(false);
        VmStatus status;
        await using (client.ConfigureAwait(false))
            status = await client.SetGuestIpAsync(config, ct).ConfigureAwait(false);
        if (wait is { } timeout && config is not null)
            return await WaitAsync(name, null, VmWaitCondition.GuestIpAssigned, timeout, ct).ConfigureAwait(false);
        return new MacVm(vmConfig, status, Store.Vm(name).Directory);
    }

    private async Task<MacVm> WithHostAsync(string name, Func<HostClient, CancellationToken, Task<VmStatus>> call, CancellationToken ct)
    {
        var config = ReadConfig(name);
        var client = await ConnectRunningAsync(name, ct).ConfigureAwait(false);
        await using (client.ConfigureAwait(false))
            return new MacVm(config, await call(client, ct).ConfigureAwait(false), Store.Vm(name).Directory);
    }

    /// <summary>A client of the VM's host, or NotRunning when no host answers.</summary>
    private async Task<HostClient> ConnectRunningAsync(string name, CancellationToken ct)
    {
        var paths = Store.Vm(name);
        var client = await HostClient.TryConnectAsync(paths.ControlSocket, ct).ConfigureAwait(false);
        if (client is not null) return client;
        var status = await QueryStatusAsync(paths, ct).ConfigureAwait(false);
        throw new MacVmException(MacVmErrorKind.InvalidState, "NotRunning",
            $"VM '{name}' is {status.State}{(status.Reason is null ? "" : $" ({status.Reason})")}. Start it first with Start-MacVm -Name {name}.", name);
    }

    /// <summary>Waits until the VM is in <paramref name="state"/> or meets <paramref name="condition"/>.</summary>
    public async Task<MacVm> WaitAsync(string name, VmState? state, VmWaitCondition? condition, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var vm = await GetAsync(name, ct).ConfigureAwait(false);
            var met = (state is null || vm.State == state) && condition switch
            {
                VmWaitCondition.GuestBooted => vm.Status.GuestBooted,
                VmWaitCondition.GuestAgentReady => vm.Status.GuestAgentReady,
                VmWaitCondition.GuestIpAssigned => vm.Status.GuestIpAssigned,
                _ => true,
            };
            if (met) return vm;
            if (condition is not null && vm.Status.IsTerminal)
                throw new MacVmException(MacVmErrorKind.InvalidState, "NotRunning",
                    $"VM '{name}' is {vm.State}{(vm.StateReason is null ? "" : $" ({vm.StateReason})")}; it cannot reach {condition}.", name);
            if (DateTime.UtcNow > deadline)
                throw new MacVmException(MacVmErrorKind.Timeout, "Timeout",
                    $"VM '{name}' did not reach {(state is null ? "" : state.ToString())}{(state is not null && condition is not null ? " and " : "")}{condition?.ToString() ?? ""} within {timeout.TotalSeconds:0.#} s; it is {vm.State}.", name);
            await Task.Delay(TimeSpan.FromMilliseconds(50), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes a VM and its files. A running VM is refused unless <paramref name="force"/>, which kills it.</summary>
    public async Task RemoveAsync(string name, bool force, IOperationReporter reporter, CancellationToken ct)
    {
        var paths = Store.Vm(name);
        if (!Directory.Exists(paths.Directory) || NameRules.Check("VM", name) is not null)
            throw MacVmException.VmNotFound(name, Store.Root);
        var status = File.Exists(paths.Manifest) ? await QueryStatusAsync(paths, ct).ConfigureAwait(false) : new VmStatus { State = VmState.Failed };
        if (!status.IsTerminal)
        {
            if (!force)
                throw new MacVmException(MacVmErrorKind.InvalidState, "VmRunning",
                    $"VM '{name}' is {status.State}. Stop it first (Stop-MacVm -Name {name}), or use Remove-MacVm -Force to kill and remove it.", name);
            var hostPid = VmStore.ReadHostPid(paths);
            if (await HostClient.TryConnectAsync(paths.ControlSocket, ct).ConfigureAwait(false) is { } client)
            {
                await using (client.ConfigureAwait(false))
                {
                    try { await client.StopAsync(new StopRequest { Force = true }, ct).ConfigureAwait(false); }
                    catch (MacVmException) { /* gone already */ }
                }
            }
            await WaitForHostExitAsync(hostPid, paths, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
        }
        CleanUpLeftovers(paths);
        try
        {
            if (Store.ReadVm(name) is { } removed) NetworkRules.RemoveStaleClientSocket(removed);
        }
        catch (InvalidDataException)
        {
            // A damaged manifest names no client socket.
        }
        // Rename first: a VM is either listed whole or not at all, even if deleting is interrupted.
        var doomed = Path.Combine(Store.VmsDirectory, $".removed-{name}-{Guid.NewGuid():N}");
        Directory.Move(paths.Directory, doomed);
        TryDeleteDirectory(doomed);
        if (paths.UsesRuntimeSocketDirectory) TryDeleteDirectory(paths.SocketDirectory);
        // Normally unlinked by the host at once; left only by a host killed in its first milliseconds.
        AtomicFile.TryDelete(paths.SharedMemoryFile);
        reporter.Verbose($"Removed VM '{name}'.");
    }

    /// <summary>
    /// Kills what a crashed host may have left: the host itself if it hangs, and its QEMU if the
    /// parent-death signal did not reach it. Only processes that are provably this VM's are touched.
    /// </summary>
    private static void CleanUpLeftovers(VmPaths paths)
    {
        if (VmStore.ReadHostPid(paths) is { } hostPid && IsOurHost(hostPid, paths))
            Posix.Signal(hostPid, Posix.SigKill);
        if (VmStore.ReadStatus(paths)?.HypervisorProcessId is { } hv && Posix.ProcessExists(hv)
            && Posix.ProcessCommandLine(hv) is { } cmd && cmd.Contains(paths.QmpSocket, StringComparison.Ordinal))
            Posix.Signal(hv, Posix.SigKill);
    }

    internal static void TryDeleteDirectory(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Wildcard matching of names, as PowerShell users expect (* ? [a-z]).</summary>
public static class WildcardNames
{
    /// <summary>Names matching any pattern (all names for none), and the literal patterns that matched nothing.</summary>
    public static (IReadOnlyList<string> Names, IReadOnlyList<string> Missing) Resolve(IReadOnlyList<string> all, IEnumerable<string>? patterns)
    {
        var list = patterns?.ToList();
        if (list is null || list.Count == 0) return (all, Array.Empty<string>());
        var names = new List<string>();
        var missing = new List<string>();
        foreach (var pattern in list)
        {
            var hasWildcard = pattern.IndexOfAny(['*', '?', '[']) >= 0;
            var matches = hasWildcard ? all.Where(n => ToRegex(pattern).IsMatch(n)).ToList() : all.Where(n => n == pattern).ToList();
            if (matches.Count == 0 && !hasWildcard) missing.Add(pattern);
            foreach (var m in matches) if (!names.Contains(m)) names.Add(m);
        }
        return (names, missing);
    }

    private static Regex ToRegex(string pattern)
    {
        var sb = new System.Text.StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            switch (c)
            {
                case '*': sb.Append(".*"); break;
                case '?': sb.Append('.'); break;
                case '[':
                    var end = pattern.IndexOf(']', i + 1);
                    if (end < 0) { sb.Append(@"\["); break; }
                    sb.Append('[').Append(pattern, i + 1, end - i - 1).Append(']');
                    i = end;
                    break;
                default: sb.Append(Regex.Escape(c.ToString())); break;
            }
        }
        return new Regex(sb.Append('$').ToString(), RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    }
}
