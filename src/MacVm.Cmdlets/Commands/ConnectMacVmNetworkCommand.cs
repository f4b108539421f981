using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

/// <summary>Plugs VMs' network cards into a test network's datagram socket, or into NAT, while they run.</summary>
[Cmdlet(VerbsCommunications.Connect, "MacVmNetwork", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class ConnectMacVmNetworkCommand : VmTargetCmdlet
{
    private NetworkAttachment _attachment = NetworkAttachment.None;

    /// <summary>The path of the test network's unix datagram socket (one datagram per Ethernet frame).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SocketPath { get; set; }

    /// <summary>The name the VM's client socket is derived from (default: the VM's name and a piece of its id).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ClientId { get; set; }

    /// <summary>Plug into the hypervisor's NAT instead of a socket.</summary>
    [Parameter]
    public SwitchParameter Nat { get; set; }

    /// <summary>Return the VM with its new attachment.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        if (Nat == (SocketPath is not null))
            ThrowTerminatingError(new ErrorRecord(new ArgumentException("Give either -SocketPath (a test network's datagram socket) or -Nat."), ErrorIdPrefix + "InvalidArgument", ErrorCategory.InvalidArgument, null));
        _attachment = NetworkArguments.Check(this, () => Nat
            ? (ClientId is null ? NetworkAttachment.Nat : throw new ArgumentException("-ClientId applies to -SocketPath only.", nameof(ClientId)))
            : NetworkAttachment.Socket(NetworkArguments.Resolve(this, SocketPath!), ClientId))!;
    }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, $"Plug the network card into {_attachment}")) return;
        var vm = RunEngine((_, ct) => Vms.SetNetworkAsync(name, _attachment, ct));
        if (PassThru) WriteObject(vm);
    }
}
