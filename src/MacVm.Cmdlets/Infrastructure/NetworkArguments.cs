using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using MacVm.Engine.Operations;

namespace MacVm.Cmdlets.Infrastructure;

/// <summary>The -Network argument of New-MacVm and Restore-MacVmSnapshot, and checks shared by the network cmdlets.</summary>
internal static class NetworkArguments
{
    /// <summary>
    /// "None", "Nat", a socket path (relative to the current location), or "Socket:PATH" (what a MacVm
    /// object's Network shows) → an attachment; null for null.
    /// </summary>
    public static NetworkAttachment? Parse(PSCmdlet cmdlet, string? value, string? clientId)
    {
        if (value is null) return null;
        if (string.Equals(value, "None", StringComparison.OrdinalIgnoreCase)) return ClientIdOnlyWithSocket(NetworkAttachment.None, clientId);
        if (string.Equals(value, "Nat", StringComparison.OrdinalIgnoreCase)) return ClientIdOnlyWithSocket(NetworkAttachment.Nat, clientId);
        var path = value.StartsWith("Socket:", StringComparison.OrdinalIgnoreCase) ? value["Socket:".Length..] : value;
        if (path.Length == 0) throw new ArgumentException("-Network needs None, Nat, or the path of a datagram network socket.", "Network");
        return NetworkAttachment.Socket(Resolve(cmdlet, path), clientId);
    }

    /// <summary>A path as PowerShell users mean it: relative to the current location, ~ expanded.</summary>
    public static string Resolve(PSCmdlet cmdlet, string path) => cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path);

    private static NetworkAttachment ClientIdOnlyWithSocket(NetworkAttachment a, string? clientId) =>
        clientId is null ? a : throw new ArgumentException($"-ClientId names the client socket of a datagram network; it does not apply to -Network {a.Kind}.", "ClientId");

    /// <summary>
    /// Checks an attachment before any VM is touched; a bad one ends the cmdlet with an error naming the value
    /// (&lt;Cmdlet&gt;InvalidArgument, or &lt;Cmdlet&gt;NetworkNotFound when no server listens).
    /// </summary>
    public static NetworkAttachment? Check(MacVmCmdlet cmdlet, Func<NetworkAttachment?> make)
    {
        try
        {
            return make() is { } a ? NetworkRules.Validate(a) : null;
        }
        catch (MacVmException ex)
        {
            cmdlet.ThrowTerminatingError(new ErrorRecord(ex, cmdlet.ErrorIdPrefixForNetwork + ex.Problem, ErrorCategory.ObjectNotFound, ex.Target));
            return null;
        }
        catch (ArgumentException ex)
        {
            cmdlet.ThrowTerminatingError(new ErrorRecord(ex, cmdlet.ErrorIdPrefixForNetwork + "InvalidArgument", ErrorCategory.InvalidArgument, ex.ParamName));
            return null;
        }
    }
}

/// <summary>Completes -Network with None and Nat (a socket path is typed or tab-completed as a path).</summary>
public sealed class NetworkCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        NameCompletion.Complete(new[] { "None", "Nat" }, wordToComplete);
}
