using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

/// <summary>Makes new VMs from a snapshot and resumes them where the snapshot was saved; several restores run in parallel.</summary>
[Cmdlet(VerbsData.Restore, "MacVmSnapshot", SupportsShouldProcess = true, DefaultParameterSetName = ByObject)]
[OutputType(typeof(MacVm))]
public sealed class RestoreMacVmSnapshotCommand : MacVmCmdlet
{
    private const string ByName = "ByName";
    private const string ByObject = "ByObject";

    /// <summary>The snapshot's name.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByName, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(SnapshotNameCompleter))]
    public string SnapshotName { get; set; } = "";

    /// <summary>The snapshot, as Get-MacVmSnapshot or Save-MacVm -PassThru returns it.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByObject, ValueFromPipeline = true)]
    public MacVmSnapshot? Snapshot { get; set; }

    /// <summary>The new VM's name (default: the snapshot's name and a random suffix); with -Count, the prefix of name-1, name-2, ….</summary>
    [Parameter(Position = 1)]
    public string? Name { get; set; }

    /// <summary>How many VMs to restore from the snapshot, in parallel.</summary>
    [Parameter]
    [ValidateRange(1, 64)]
    public int Count { get; set; } = 1;

    /// <summary>Fail instead of cold-booting the saved disk when the machine state is damaged or does not load.</summary>
    [Parameter]
    public SwitchParameter NoFallback { get; set; }

    /// <summary>Serve screenshots over HTTP on this loopback port (0: a free port; needed with -Count), guarded by each VM's token; off by default.</summary>
    [Parameter]
    [ValidateRange(0, Engine.Screenshots.ScreenshotEndpoint.MaxPort)]
    public int? ScreenshotPort { get; set; }

    /// <summary>Where the restored VMs' network cards are plugged in: None, Nat, or a datagram socket path (default: as the snapshot was saved).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(NetworkCompleter))]
    public string? Network { get; set; }

    /// <summary>With a socket -Network and one VM: the name its client socket is derived from.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ClientId { get; set; }

    /// <summary>Replace existing VMs of the same names without asking (they are killed and removed).</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <inheritdoc/>
    protected override void ProcessRecord()
    {
        var snapshot = ParameterSetName == ByObject ? Snapshot!.Name : SnapshotName;
        if (Count > 1 && ScreenshotPort is > 0)
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"-ScreenshotPort {ScreenshotPort} cannot serve {Count} VMs: one port serves one VM. Give -ScreenshotPort 0 (each VM picks a free port)."),
                ErrorIdPrefix + "InvalidArgument", ErrorCategory.InvalidArgument, ScreenshotPort));
        var network = NetworkArguments.Check(this, () => NetworkArguments.Parse(this, Network, ClientId));
        var request = new RestoreRequest { Snapshot = snapshot, Name = Name, Count = Count, NoFallback = NoFallback, ScreenshotPort = ScreenshotPort, Network = network };
        if (!ShouldProcess(snapshot, Count == 1 ? $"Restore into a new VM '{Name ?? "(generated name)"}'" : $"Restore into {Count} new VMs")) return;
        if (Name is not null)
        {
            var targets = Count == 1 ? new[] { Name } : Enumerable.Range(1, Count).Select(i => $"{Name}-{i}").ToArray();
            foreach (var existing in targets.Where(t => NameRulesOk(t) && Store.ReadVm(t) is not null))
            {
                // Replacing destroys a VM: ask (as a ConfirmImpact High change would) unless -Force.
                if (!Force && !ShouldContinue($"VM '{existing}' exists. Kill and remove it, and restore '{snapshot}' in its place?", "Replace VM")) return;
                ForItem(existing, () => RunEngine((r, ct) => Vms.RemoveAsync(existing, force: true, r, ct)));
            }
        }
        ForItem(snapshot, () => WriteObject(RunEngine((r, ct) => Snapshots.RestoreAsync(request, r, ct)), enumerateCollection: true));
    }

    private static bool NameRulesOk(string name) => Engine.Store.NameRules.Check("VM", name) is null;
}
