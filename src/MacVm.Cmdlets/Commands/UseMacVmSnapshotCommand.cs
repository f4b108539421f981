using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

/// <summary>
/// Returns the cached snapshot for an image and a code version, preparing it exactly once (across
/// processes) when it does not exist: boot the image, run -Prepare on the VM, save, remove the VM.
/// </summary>
[Cmdlet(VerbsOther.Use, "MacVmSnapshot")]
[OutputType(typeof(MacVmSnapshot))]
public sealed class UseMacVmSnapshotCommand : MacVmCmdlet
{
    /// <summary>The image the snapshot is prepared from.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string Image { get; set; } = "";

    /// <summary>The version of the preparation: bump it when -Prepare changes, and the next call prepares a new snapshot.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateRange(0, int.MaxValue)]
    public int CodeVersion { get; set; }

    /// <summary>Runs on the freshly booted VM (passed as the first argument) before it is saved; it throws to fail the preparation.</summary>
    [Parameter(Mandatory = true, Position = 2)]
    public ScriptBlock Prepare { get; set; } = ScriptBlock.Create("");

    /// <summary>Remove the snapshots of older code versions of the same image.</summary>
    [Parameter]
    public SwitchParameter Prune { get; set; }

    /// <summary>Memory of the preparation VM (and so of every VM restored from the snapshot), in MiB.</summary>
    [Parameter]
    [ValidateRange(VmManager.MinMemoryMB, VmManager.MaxMemoryMB)]
    public int MemoryMB { get; set; } = 256;

    /// <summary>The accelerator of the preparation VM.</summary>
    [Parameter]
    public VmAccelerator Accelerator { get; set; } = VmAccelerator.Auto;

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        ForItem(Image, () =>
        {
            var image = Images.Get(Image);
            var cache = new SnapshotCache(Store);
            var key = SnapshotCache.Key(image, CodeVersion);
            WriteObject(Store.ReadSnapshot(key) ?? PrepareOnce(cache, image, key));
            if (Prune) PruneOlder(cache, image, key);
        });
    }

    private MacVmSnapshot PrepareOnce(SnapshotCache cache, MacVmImage image, string key)
    {
        using var keyLock = RunEngine((r, ct) => cache.LockAsync(key, r, ct));
        // Whoever held the lock before us may have made it.
        if (Store.ReadSnapshot(key) is { } made) return made;

        var vmName = SnapshotCache.PreparationVmName(key);
        if (Store.ReadVm(vmName) is not null)
        {
            WriteVerbose($"Removing '{vmName}', left by a preparation that did not finish.");
            RunEngine((r, ct) => Vms.RemoveAsync(vmName, force: true, r, ct));
        }
        try
        {
            WriteVerbose($"Preparing snapshot '{key}' from image '{image.Name}'.");
            var vm = RunEngine((r, ct) => Vms.CreateAsync(new NewVmRequest { Name = vmName, Image = image.Name, MemoryMB = MemoryMB, Accelerator = Accelerator }, r, ct));
            if (image.GuestAgent)
                vm = RunEngine((_, ct) => Vms.WaitAsync(vmName, VmState.Running, VmWaitCondition.GuestAgentReady, TimeSpan.FromSeconds(120), ct));
            try
            {
                Prepare.Invoke(vm);
            }
            catch (RuntimeException ex)
            {
                ThrowTerminatingError(new ErrorRecord(
                    new InvalidOperationException($"Preparing snapshot '{key}' failed in the -Prepare script: {ex.Message} No snapshot was saved.", ex),
                    ErrorIdPrefix + "PrepareFailed", ErrorCategory.InvalidResult, key));
            }
            return RunEngine((r, ct) => Snapshots.SaveAsync(vmName, key, stop: true, r, ct));
        }
        finally
        {
            if (Store.ReadVm(vmName) is not null)
                RunEngine((r, ct) => Vms.RemoveAsync(vmName, force: true, r, ct));
        }
    }

    private void PruneOlder(SnapshotCache cache, MacVmImage image, string key)
    {
        foreach (var old in cache.OlderKeys(image, key))
        {
            try
            {
                Snapshots.Remove(old);
                WriteVerbose($"Pruned snapshot '{old}'.");
            }
            catch (MacVmException ex)
            {
                WriteWarning($"Could not prune snapshot '{old}': {ex.Message}");
            }
        }
    }
}
