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

/// <summary>Unplugs VMs' network cables: the NIC stays, the guest sees no carrier.</summary>
[Cmdlet(VerbsCommunications.Disconnect, "MacVmNetwork", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class DisconnectMacVmNetworkCommand : VmTargetCmdlet
{
    /// <summary>Return the VM.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, "Unplug the network cable")) return;
        var vm = RunEngine((_, ct) => Vms.SetNetworkAsync(name, NetworkAttachment.None, ct));
        if (PassThru) WriteObject(vm);
    }
}

/// <summary>Serves guests their IPv4 configuration over the guest IP channel; -Wait waits until they applied it.</summary>
[Cmdlet(VerbsCommon.Set, "MacVmGuestIp", SupportsShouldProcess = true, DefaultParameterSetName = ByName)]
[OutputType(typeof(MacVm))]
public sealed class SetMacVmGuestIpCommand : VmTargetCmdlet
{
    private GuestIpConfiguration? _config;

    /// <summary>The guest's IPv4 address.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string IPAddress { get; set; } = "";

    /// <summary>The subnet as a prefix length (24 = 255.255.255.0).</summary>
    [Parameter]
    public int? PrefixLength { get; set; }

    /// <summary>The subnet as a dotted mask; it must be contiguous.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SubnetMask { get; set; }

    /// <summary>The default gateway, inside the subnet.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string Gateway { get; set; } = "";

    /// <summary>Wait until the guest has applied the configuration and acknowledged it.</summary>
    [Parameter]
    public SwitchParameter Wait { get; set; }

    /// <summary>Seconds -Wait waits before an error.</summary>
    [Parameter]
    [ValidateRange(1, 3600)]
    public int TimeoutSec { get; set; } = 60;

    /// <summary>Return the VM.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    /// <inheritdoc/>
    protected override void BeginProcessing()
    {
        try
        {
            _config = GuestIpRules.Create(IPAddress, PrefixLength, SubnetMask, Gateway);
        }
        catch (ArgumentException ex)
        {
            ThrowTerminatingError(new ErrorRecord(ex, ErrorIdPrefix + "InvalidArgument", ErrorCategory.InvalidArgument, ex.ParamName));
        }
    }

    /// <inheritdoc/>
    protected override void ProcessVm(string name)
    {
        if (!ShouldProcess(name, $"Serve the guest IP configuration {_config}")) return;
        TimeSpan? wait = Wait ? TimeSpan.FromSeconds(TimeoutSec) : null;
        var vm = RunEngine((_, ct) => Vms.SetGuestIpAsync(name, _config, wait, ct));
        if (PassThru) WriteObject(vm);
    }
}
