using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using MacVm.Engine.Store;

namespace MacVm.Cmdlets.Infrastructure;

/// <summary>Completes VM names from the store.</summary>
public sealed class VmNameCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        NameCompletion.Complete(VmStore.Default().VmNames(), wordToComplete);
}

/// <summary>Completes image names from the store.</summary>
public sealed class ImageNameCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        NameCompletion.Complete(VmStore.Default().ImageNames(), wordToComplete);
}

/// <summary>Completes snapshot names from the store.</summary>
public sealed class SnapshotNameCompleter : IArgumentCompleter
{
    /// <inheritdoc/>
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        NameCompletion.Complete(VmStore.Default().SnapshotNames(), wordToComplete);
}

internal static class NameCompletion
{
    public static IEnumerable<CompletionResult> Complete(IEnumerable<string> names, string word)
    {
        var prefix = (word ?? "").Trim('\'', '"');
        return names
            .Where(n => n.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Select(n => new CompletionResult(n, n, CompletionResultType.ParameterValue, n))
            .ToList();
    }
}
