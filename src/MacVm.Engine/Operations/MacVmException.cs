namespace MacVm.Engine.Operations;

/// <summary>What went wrong, in the terms the cmdlets turn into an ErrorCategory.</summary>
public enum MacVmErrorKind
{
    /// <summary>A named VM, image or snapshot does not exist.</summary>
    NotFound,
    /// <summary>The name is already used.</summary>
    AlreadyExists,
    /// <summary>The VM's state does not allow the operation.</summary>
    InvalidState,
    /// <summary>Something the module needs is not installed.</summary>
    NotInstalled,
    /// <summary>The host process or the hypervisor failed.</summary>
    HostFailed,
    /// <summary>The operation did not finish in time.</summary>
    Timeout,
    /// <summary>A file in the store is damaged or missing.</summary>
    Damaged,
    /// <summary>The guest (or its agent) did not answer as expected.</summary>
    GuestFailed,
}

/// <summary>
/// An error the engine reports about one item. <see cref="Problem"/> becomes the second half of the
/// cmdlet's ErrorId (&lt;Cmdlet&gt;&lt;Problem&gt;), so keep it stable.
/// </summary>
public class MacVmException : Exception
{
    /// <summary>Makes the exception.</summary>
    public MacVmException(MacVmErrorKind kind, string problem, string message, string? target = null, Exception? inner = null)
        : base(message, inner)
    {
        Kind = kind;
        Problem = problem;
        Target = target;
    }

    /// <summary>The kind of failure.</summary>
    public MacVmErrorKind Kind { get; }

    /// <summary>A short PascalCase name of the problem, e.g. NotFound, NameTaken, HostFailed.</summary>
    public string Problem { get; }

    /// <summary>The name of the VM, image or snapshot the error is about.</summary>
    public string? Target { get; }

    /// <summary>A VM that does not exist.</summary>
    public static MacVmException VmNotFound(string name, string storeRoot) =>
        new(MacVmErrorKind.NotFound, "NotFound", $"No VM named '{name}' in the store '{storeRoot}'. Get-MacVm lists the VMs.", name);

    /// <summary>A snapshot that does not exist.</summary>
    public static MacVmException SnapshotNotFound(string name, string storeRoot) =>
        new(MacVmErrorKind.NotFound, "SnapshotNotFound", $"No snapshot named '{name}' in the store '{storeRoot}'. Get-MacVmSnapshot lists the snapshots.", name);

    /// <summary>An image that does not exist.</summary>
    public static MacVmException ImageNotFound(string name, string storeRoot) =>
        new(MacVmErrorKind.NotFound, "ImageNotFound", $"No image named '{name}' in the store '{storeRoot}'. Get-MacVmImage lists the images; Import-MacVmImage adds one.", name);
}
