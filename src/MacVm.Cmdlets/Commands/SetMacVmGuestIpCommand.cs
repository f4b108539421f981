using System.Management.Automation;
using MacVm.Cmdlets.Infrastructure;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Commands;

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
