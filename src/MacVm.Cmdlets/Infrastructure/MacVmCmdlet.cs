using System.Collections.Concurrent;
using System.Management.Automation;
using MacVm.Engine.Operations;
using MacVm.Engine.Store;

namespace MacVm.Cmdlets.Infrastructure;

/// <summary>
/// What every MacVm cmdlet shares: the store, the engine call that StopProcessing cancels, output
/// from engine threads marshalled onto the pipeline thread, and errors with ids &lt;Cmdlet&gt;&lt;Problem&gt;.
/// </summary>
public abstract class MacVmCmdlet : PSCmdlet, IDisposable
{
    private readonly CancellationTokenSource _cancellation = new();

    /// <summary>Cancelled when the user presses Ctrl+C or the pipeline stops.</summary>
    protected CancellationToken Cancellation => _cancellation.Token;

    /// <summary>The store ($env:MACVM_HOME is read at every call, so a session can switch stores).</summary>
    protected static VmStore Store => VmStore.Default();

    /// <summary>VM operations on the store.</summary>
    protected static VmManager Vms => new(Store);

    /// <summary>Image operations on the store.</summary>
    protected static ImageLibrary Images => new(Store);

    /// <summary>Snapshot operations on the store.</summary>
    protected static SnapshotManager Snapshots => new(Store);

    /// <summary>"New-MacVm" → "NewMacVm": the first half of every error id.</summary>
    protected string ErrorIdPrefix => MyInvocation.MyCommand.Name.Replace("-", "", StringComparison.Ordinal);

    /// <summary>The error id prefix, for helpers outside the cmdlet class.</summary>
    internal string ErrorIdPrefixForNetwork => ErrorIdPrefix;

    /// <inheritdoc/>
    protected override void StopProcessing() => _cancellation.Cancel();

    /// <summary>PowerShell disposes a cmdlet when its pipeline ends.</summary>
    public void Dispose()
    {
        _cancellation.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// Runs one engine operation on a worker thread while this (the pipeline) thread writes the
    /// progress, verbose and warning messages the engine reports, which only it may do.
    /// </summary>
    protected T RunEngine<T>(Func<IOperationReporter, CancellationToken, Task<T>> operation)
    {
        using var queue = new BlockingCollection<Action<Cmdlet>>();
        var reporter = new PipelineReporter(queue);
        var token = Cancellation;
        var task = Task.Run(() => operation(reporter, token), token);
        _ = task.ContinueWith(_ => queue.CompleteAdding(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        foreach (var write in queue.GetConsumingEnumerable())
            write(this);
        try
        {
            return task.GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>Runs an engine operation that returns nothing.</summary>
    protected void RunEngine(Func<IOperationReporter, CancellationToken, Task> operation) =>
        RunEngine<bool>(async (r, ct) => { await operation(r, ct).ConfigureAwait(false); return true; });

    /// <summary>
    /// Runs <paramref name="action"/> for one item and turns its failure into the right error:
    /// a non-terminating error for problems with the item, a terminating one for bad arguments
    /// and for a store that cannot be written (every other item would fail the same way).
    /// </summary>
    protected void ForItem(object target, Action action)
    {
        try
        {
            action();
        }
        catch (MacVmException ex)
        {
            WriteError(new ErrorRecord(ex, ErrorIdPrefix + ex.Problem, Category(ex.Kind), ex.Target ?? target));
        }
        catch (StoreNotWritableException ex)
        {
            ThrowTerminatingError(new ErrorRecord(ex, ErrorIdPrefix + "StoreNotWritable", ErrorCategory.PermissionDenied, Store.Root));
        }
        catch (ArgumentException ex)
        {
            ThrowTerminatingError(new ErrorRecord(ex, ErrorIdPrefix + "InvalidArgument", ErrorCategory.InvalidArgument, target));
        }
        catch (PathTooLongException ex)
        {
            ThrowTerminatingError(new ErrorRecord(ex, ErrorIdPrefix + "PathTooLong", ErrorCategory.InvalidArgument, target));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException or TimeoutException)
        {
            WriteError(new ErrorRecord(ex, ErrorIdPrefix + "Failed", ErrorCategory.NotSpecified, target));
        }
    }

    /// <summary>Writes a NotFound error (ObjectNotFound) for each name that matched nothing of <paramref name="notFound"/>'s kind.</summary>
    protected void WriteNotFound(IEnumerable<string> missing, Func<string, string, MacVmException> notFound)
    {
        foreach (var name in missing)
        {
            var ex = notFound(name, Store.Root);
            WriteError(new ErrorRecord(ex, ErrorIdPrefix + ex.Problem, ErrorCategory.ObjectNotFound, name));
        }
    }

    /// <summary>ShouldProcess, except that -Force alone (without -Confirm or -WhatIf) skips the prompt.</summary>
    protected bool ShouldProcessUnlessForced(bool force, string target, string action)
    {
        var bound = MyInvocation.BoundParameters;
        if (force && !bound.ContainsKey("Confirm") && !bound.ContainsKey("WhatIf")) return true;
        return ShouldProcess(target, action);
    }

    private static ErrorCategory Category(MacVmErrorKind kind) => kind switch
    {
        MacVmErrorKind.NotFound => ErrorCategory.ObjectNotFound,
        MacVmErrorKind.AlreadyExists => ErrorCategory.ResourceExists,
        MacVmErrorKind.InvalidState => ErrorCategory.InvalidOperation,
        MacVmErrorKind.NotInstalled => ErrorCategory.NotInstalled,
        MacVmErrorKind.Timeout => ErrorCategory.OperationTimeout,
        MacVmErrorKind.Damaged => ErrorCategory.InvalidData,
        MacVmErrorKind.GuestFailed => ErrorCategory.ConnectionError,
        _ => ErrorCategory.NotSpecified,
    };

    private sealed class PipelineReporter : IOperationReporter
    {
        private readonly BlockingCollection<Action<Cmdlet>> _queue;

        public PipelineReporter(BlockingCollection<Action<Cmdlet>> queue) => _queue = queue;

        private void Post(Action<Cmdlet> write)
        {
            try { _queue.Add(write); }
            catch (InvalidOperationException) { /* the operation already finished */ }
        }

        public void Progress(OperationProgress p) => Post(c => c.WriteProgress(new ProgressRecord(p.ActivityId, p.Activity, p.Status)
        {
            PercentComplete = Math.Clamp(p.PercentComplete, -1, 100),
            RecordType = p.Completed ? ProgressRecordType.Completed : ProgressRecordType.Processing,
        }));

        public void Verbose(string message) => Post(c => c.WriteVerbose(message));

        public void Warning(string message) => Post(c => c.WriteWarning(message));
    }
}
