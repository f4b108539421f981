using System.Security.Cryptography;
using MacVm.Engine.Drivers;
using MacVm.Engine.HostProtocol;
using MacVm.Engine.Platform;
using MacVm.Engine.Store;

namespace MacVm.Engine.Operations;

/// <summary>What Restore-MacVmSnapshot asks for.</summary>
public sealed record RestoreRequest
{
    /// <summary>The snapshot.</summary>
    public required string Snapshot { get; init; }
    /// <summary>The new VM's name (with <see cref="Count"/> &gt; 1, the prefix of "name-1", "name-2", …).</summary>
    public string? Name { get; init; }
    /// <summary>How many VMs to restore.</summary>
    public int Count { get; init; } = 1;
    /// <summary>Fail instead of cold-booting when the state does not load.</summary>
    public bool NoFallback { get; init; }
    /// <summary>The screenshot endpoint's loopback port of each new VM: null for none, 0 for a free one (needed with several VMs).</summary>
    public int? ScreenshotPort { get; init; }
    /// <summary>Where the restored VMs' NICs are plugged in (default: where the snapshot's VM was when saved).</summary>
    public NetworkAttachment? Network { get; init; }
}

/// <summary>
/// Named snapshots: save a running VM's machine state with the disk layer it belongs to, list,
/// remove, and restore into new VMs (any number, in parallel).
/// </summary>
public sealed class SnapshotManager
{
    private static int s_activityIds = 2_000_000;
    private readonly VmManager _vms;

    // The file name of a macOS guest's NVRAM inside a snapshot (Apple driver).
    private const string MacAuxiliaryStorage = "auxiliary-storage";

    /// <summary>Works on <paramref name="store"/>.</summary>
    public SnapshotManager(VmStore store)
    {
        Store = store;
        _vms = new VmManager(store);
    }

    /// <summary>The store.</summary>
    public VmStore Store { get; }

    /// <summary>Snapshot names matching the patterns, and the literal names that matched nothing.</summary>
    public (IReadOnlyList<string> Names, IReadOnlyList<string> Missing) Resolve(IEnumerable<string>? patterns) =>
        WildcardNames.Resolve(Store.SnapshotNames(), patterns);

    /// <summary>Reads one snapshot or throws SnapshotNotFound.</summary>
    public MacVmSnapshot Get(string name)
    {
        try
        {
            return (NameRules.Check("snapshot", name) is null ? Store.ReadSnapshot(name) : null)
                ?? throw MacVmException.SnapshotNotFound(name, Store.Root);
        }
        catch (InvalidDataException ex)
        {
            throw new MacVmException(MacVmErrorKind.Damaged, "SnapshotDamaged", ex.Message + " Remove it with Remove-MacVmSnapshot.", name, ex);
        }
    }

    /// <summary>
    /// Saves VM <paramref name="vmName"/> as snapshot <paramref name="snapshotName"/>: the guest is paused,
    /// its disk layer frozen and its state written; then it resumes (or stops with <paramref name="stop"/>).
    /// The snapshot is built in a hidden folder and renamed into place: a failed save lists nothing.
    /// </summary>
    public async Task<MacVmSnapshot> SaveAsync(string vmName, string? snapshotName, bool stop, IOperationReporter reporter, CancellationToken ct)
    {
        var name = snapshotName ?? $"{vmName}-{DateTime.UtcNow:yyyyMMdd-HHmmss}";
        NameRules.Validate("snapshot", name, "SnapshotName");
        var config = await _vms.GetAsync(vmName, ct).ConfigureAwait(false);
        var paths = Store.Vm(vmName);
        Store.EnsureWritable();
        var final = Store.SnapshotDirectory(name);
        if (Directory.Exists(final)) throw NameTaken(name);
        var activity = Interlocked.Increment(ref s_activityIds);
        var title = $"Saving VM {vmName} as {name}";
        using (await VmLock.AcquireAsync(paths, ct).ConfigureAwait(false))
        {
            var client = await HostClient.TryConnectAsync(paths.ControlSocket, ct).ConfigureAwait(false)
                ?? throw new MacVmException(MacVmErrorKind.InvalidState, "NotRunning",
                    $"VM '{vmName}' is {config.State}: only a running or paused VM can be saved. Start it with Start-MacVm -Name {vmName}.", vmName);
            var staging = Path.Combine(Store.SnapshotsDirectory, $".new-{name}-{Guid.NewGuid():N}");
            VmStore.CreatePrivateDirectory(staging);
            try
            {
                await using (client.ConfigureAwait(false))
                {
                    var vm = Store.ReadVm(vmName)!;
                    var newDisk = NextDiskName(paths, vm.Boot.DiskFile);
                    reporter.Progress(new OperationProgress(activity, title, "Saving the machine state", 20));
                    var result = await client.SaveAsync(new SaveRequest
                    {
                        StateFile = Path.Combine(staging, "state.bin"),
                        NewActiveDisk = paths.Disk(newDisk),
                        LeavePaused = stop,
                    }, ct).ConfigureAwait(false);
                    reporter.Verbose($"Saved '{vmName}' (paused {result.PausedMs:0} ms); frozen disk layer '{result.FrozenDisk}'.");

                    var diskCopy = Path.Combine(staging, "disk.qcow2");
                    if (!Posix.TryHardLink(result.FrozenDisk, diskCopy)) File.Copy(result.FrozenDisk, diskCopy);
                    // The host hashed what it wrote (state, memory image) as it wrote it: no second read.
                    var parts = new List<(string File, string Role)> { ("disk.qcow2", SnapshotFile.DiskRole) };
                    if (vm.Boot.MacPlatform is { } mac)
                    {
                        // A macOS guest's NVRAM belongs to its state (the guest is paused: the copy is consistent).
                        File.Copy(paths.Disk(mac.AuxiliaryStorageFile), Path.Combine(staging, MacAuxiliaryStorage));
                        parts.Add((MacAuxiliaryStorage, "auxiliary-storage"));
                    }
                    reporter.Progress(new OperationProgress(activity, title, "Writing checksums", 70));
                    var files = new List<SnapshotFile>(result.Files);
                    foreach (var (file, role) in parts)
                        files.Add(await SnapshotIntegrity.DescribeAsync(Path.Combine(staging, file), role, ct).ConfigureAwait(false));
                    var snapshot = new MacVmSnapshot
                    {
                        Name = name,
                        SourceVm = vmName,
                        Driver = vm.Driver,
                        Image = vm.Image,
                        ImageDigest = vm.ImageDigest,
                        Configuration = vm with { Name = name, Boot = vm.Boot with { DiskFile = "disk.qcow2" }, Restore = null, ScreenshotPort = null },
                        Files = files,
                    };
                    AtomicFile.WriteAllText(Path.Combine(staging, "snapshot.json"), ModelJson.Serialize(snapshot));
                    // Just hashed: the first restore need not hash again (renaming the folder keeps the files' versions).
                    SnapshotIntegrity.WriteStamp(staging, files);
                    try
                    {
                        Directory.Move(staging, final);
                    }
                    catch (IOException) when (Directory.Exists(final))
                    {
                        throw NameTaken(name);
                    }
                    reporter.Progress(new OperationProgress(activity, title, "Saved", 100, Completed: true));
                    if (stop) await _vms.StopAsync(vmName, force: true, TimeSpan.Zero, NullReporter.Instance, ct).ConfigureAwait(false);
                    return snapshot with { Path = final };
                }
            }
            catch
            {
                VmManager.TryDeleteDirectory(staging);
                throw;
            }
        }
    }

    private static string NextDiskName(VmPaths paths, string? current)
    {
        for (var n = 1; ; n++)
        {
            var candidate = $"disk-{n}.qcow2";
            if (candidate != current && !File.Exists(paths.Disk(candidate))) return candidate;
        }
    }

    /// <summary>
    /// Makes new VMs from a snapshot and resumes them, in parallel. Files are checked first: a damaged
    /// state falls back to a cold boot of the saved disk with a warning (or fails with NoFallback);
    /// a damaged disk always fails.
    /// </summary>
    public async Task<IReadOnlyList<MacVm>> RestoreAsync(RestoreRequest request, IOperationReporter reporter, CancellationToken ct)
    {
        if (request.Count < 1) throw new ArgumentOutOfRangeException(nameof(request.Count), "Count must be at least 1.");
        Screenshots.ScreenshotEndpoint.ValidatePort(request.ScreenshotPort);
        if (request.Count > 1 && request.ScreenshotPort is > 0)
            throw new ArgumentException($"ScreenshotPort {request.ScreenshotPort} cannot serve {request.Count} VMs: one port serves one VM. Give -ScreenshotPort 0 (each VM picks a free port).", nameof(request.ScreenshotPort));
        Screenshots.ScreenshotEndpoint.CheckPortFree(request.ScreenshotPort, request.Name ?? request.Snapshot);
        if (request.Network is not null) request = request with { Network = NetworkRules.Validate(request.Network) };
        var snapshot = Get(request.Snapshot);
        var problems = await SnapshotIntegrity.VerifyAsync(snapshot, ct).ConfigureAwait(false);
        if (problems.Any(p => !p.File.IsMachineState))
            throw new MacVmException(MacVmErrorKind.Damaged, "SnapshotDamaged",
                $"Snapshot '{snapshot.Name}' is damaged: {string.Join("; ", problems.Select(p => p.Problem))}. Its disk cannot be used; remove it with Remove-MacVmSnapshot.", snapshot.Name);
        string? stateProblem = problems.Count > 0 ? string.Join("; ", problems.Select(p => p.Problem)) : null;
        if (stateProblem is not null)
        {
            if (request.NoFallback)
                throw new MacVmException(MacVmErrorKind.Damaged, "SnapshotDamaged",
                    $"Snapshot '{snapshot.Name}' cannot be restored: {stateProblem}. Without -NoFallback the VM would cold-boot the saved disk instead.", snapshot.Name);
            reporter.Warning($"Snapshot '{snapshot.Name}': {stateProblem}. Cold-booting its saved disk instead of restoring the machine state.");
        }
        var prefix = request.Name ?? $"{snapshot.Name}-{Guid.NewGuid().ToString("N")[..6]}";
        var names = request.Count == 1 ? new[] { prefix } : Enumerable.Range(1, request.Count).Select(i => $"{prefix}-{i}").ToArray();
        foreach (var n in names) NameRules.Validate("VM", n, "Name");
        // One client id per VM: with -Count, a chosen id gets the VM's number.
        var tasks = names.Select((n, i) => RestoreOneAsync(snapshot, n, stateProblem is null,
            request.Network is { ClientId: { } id } network && names.Length > 1 ? request with { Network = network with { ClientId = $"{id}-{i + 1}" } } : request,
            reporter, ct)).ToList();
        await Task.WhenAll(tasks.Select(t => t.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default))).ConfigureAwait(false);
        var failed = tasks.Where(t => t.IsFaulted || t.IsCanceled).ToList();
        if (failed.Count > 0)
        {
            // One failure fails the call; the VMs that did restore stay (they are usable) and are named.
            var made = tasks.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result.Name).ToList();
            if (made.Count > 0) reporter.Warning($"Restored {string.Join(", ", made)} although other restores failed.");
            await failed[0].ConfigureAwait(false);
        }
        var vms = tasks.Select(t => t.Result).ToList();
        foreach (var vm in vms.Where(v => v.Status.RestoreFallbackReason is not null))
            reporter.Warning($"VM '{vm.Name}' cold-booted instead of restoring: {vm.Status.RestoreFallbackReason}");
        return vms;
    }

    private async Task<MacVm> RestoreOneAsync(MacVmSnapshot snapshot, string name, bool loadState, RestoreRequest request, IOperationReporter reporter, CancellationToken ct)
    {
        var final = Store.Vm(name);
        if (Directory.Exists(final.Directory))
            throw new MacVmException(MacVmErrorKind.AlreadyExists, "NameTaken", $"A VM named '{name}' already exists. Choose another -Name, or remove it first with Remove-MacVm -Name {name}.", name);
        var driver = DriverRegistry.Get(snapshot.Driver);
        driver.CheckAvailable(snapshot.Configuration.Accelerator);
        Store.EnsureWritable();
        var staging = Path.Combine(Store.VmsDirectory, $".new-{name}-{Guid.NewGuid():N}");
        VmStore.CreatePrivateDirectory(staging);
        try
        {
            await driver.CloneDiskAsync(Path.Combine(snapshot.Path!, "disk.qcow2"), "qcow2", Path.Combine(staging, "disk.qcow2"), ct).ConfigureAwait(false);
            var mac = snapshot.Configuration.Boot.MacPlatform;
            if (mac is not null)
                await driver.CloneDiskAsync(Path.Combine(snapshot.Path!, MacAuxiliaryStorage), "raw", Path.Combine(staging, mac.AuxiliaryStorageFile), ct).ConfigureAwait(false);
            var config = snapshot.Configuration with
            {
                Name = name,
                Id = Guid.NewGuid(),
                CreatedUtc = DateTimeOffset.UtcNow,
                Snapshot = snapshot.Name,
                Boot = snapshot.Configuration.Boot with { DiskFile = "disk.qcow2" },
                // Each VM its own MAC: the guest IP agent gives it to the NIC (QEMU's saved state holds the
                // snapshot's). Virtualization.framework restores only onto the configuration that was saved,
                // MAC included, so Apple VMs keep the snapshot's.
                MacAddress = snapshot.Driver == VmDriverKind.Apple ? snapshot.Configuration.MacAddress : GuestIpRules.NewMacAddress(),
                Network = request.Network is null ? snapshot.Configuration.Network : request.Network.Kind == NetworkKind.None ? null : request.Network,
                Restore = loadState ? new RestoreSpec
                {
                    Snapshot = snapshot.Name,
                    StatePath = Path.Combine(snapshot.Path!, "state.bin"),
                    MemoryPath = snapshot.Files.FirstOrDefault(f => f.Role == SnapshotFile.MemoryRole) is { } memory ? Path.Combine(snapshot.Path!, memory.Name) : null,
                    NoFallback = request.NoFallback,
                } : null,
                // Each restored VM gets the endpoint asked for now, never the saved VM's port (copies would collide).
                ScreenshotPort = request.ScreenshotPort,
            };
            AtomicFile.WriteAllText(Path.Combine(staging, "vm.json"), ModelJson.Serialize(config));
            Directory.Move(staging, final.Directory);
        }
        catch
        {
            VmManager.TryDeleteDirectory(staging);
            throw;
        }
        try
        {
            return await _vms.StartAsync(name, reporter, ct).ConfigureAwait(false);
        }
        catch
        {
            await _vms.RemoveAsync(name, force: true, NullReporter.Instance, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Removes a snapshot; refused while VMs are built on its disk layer.</summary>
    public void Remove(string name)
    {
        var snapshot = Get(name);
        var users = Store.VmNames().Where(vm =>
        {
            try { return Store.ReadVm(vm)?.Snapshot == name; }
            catch (InvalidDataException) { return false; }
        }).ToList();
        if (users.Count > 0)
            throw new MacVmException(MacVmErrorKind.InvalidState, "SnapshotInUse",
                $"Snapshot '{name}' is in use by VM(s) {string.Join(", ", users.Select(u => $"'{u}'"))}, whose disks are built on it. Remove those VMs first (Remove-MacVm).", name);
        var doomed = Path.Combine(Store.SnapshotsDirectory, $".removed-{name}-{Guid.NewGuid():N}");
        Directory.Move(snapshot.Path!, doomed);
        VmManager.TryDeleteDirectory(doomed);
    }

    private static MacVmException NameTaken(string name) =>
        new(MacVmErrorKind.AlreadyExists, "NameTaken", $"A snapshot named '{name}' already exists. Choose another -SnapshotName, or remove it first with Remove-MacVmSnapshot -Name {name}.", name);
}
