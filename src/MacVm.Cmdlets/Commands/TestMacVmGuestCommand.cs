using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;

namespace MacVm.Cmdlets.Commands;

/// <summary>Pings the guest agent of VMs over the guest channel and returns the round trip.</summary>
[Cmdlet(VerbsDiagnostic.Test, "MacVmGuest", DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVmGuestPing))]
public sealed class TestMacVmGuestCommand : VmTargetCmdlet
{
    /// <summary>Seconds to wait for the answer.</summary>
    [Parameter]
    [ValidateRange(1, 600)]
    public int TimeoutSec { get; set; } = 5;

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        var result = RunEngine((_, ct) => Vms.PingGuestAsync(name, TimeSpan.FromSeconds(TimeoutSec), ct));
        WriteObject(new MacVmGuestPing(name, result.RoundTripMs, result.Token));
    }
}
