using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using MacVm.Engine.Drivers.Apple.Interop;

namespace MacVm.Engine.Drivers.Apple;

/// <summary>
/// "Run this on the VM's queue": Apple wants every call to a VZVirtualMachine made on the dispatch queue
/// it was created with. Each work item runs inside its own autorelease pool.
/// </summary>
internal interface IVmQueue : IDisposable
{
    /// <summary>The dispatch_queue_t for initWithConfiguration:queue: (0 where there is no libdispatch).</summary>
    nint NativeQueue { get; }

    /// <summary>Runs <paramref name="work"/> on the queue and returns its result.</summary>
    Task<T> RunAsync<T>(Func<T> work);
}

/// <summary>Queue helpers.</summary>
internal static class VmQueues
{
    /// <summary>A serial libdispatch queue on macOS; a dedicated thread elsewhere (Debian has no libdispatch).</summary>
    public static IVmQueue Create(string label) =>
        OperatingSystem.IsMacOS() ? new DispatchVmQueue(label) : new ThreadVmQueue(label);

    /// <summary>Runs an action on the queue.</summary>
    public static Task RunAsync(this IVmQueue queue, Action work) => queue.RunAsync(() =>
    {
        work();
        return true;
    });

    /// <summary>The work item: runs inside a pool, completes the task, never throws across the native boundary.</summary>
    internal static Action Wrap<T>(Func<T> work, TaskCompletionSource<T> done) => () =>
    {
        try
        {
            using var pool = NS.Pool();
            done.TrySetResult(work());
        }
        catch (Exception ex)
        {
            done.TrySetException(ex);
        }
    };
}

/// <summary>One thread that runs the work items in order: the stand-in for a serial dispatch queue.</summary>
internal sealed class ThreadVmQueue : IVmQueue
{
    private readonly BlockingCollection<Action> _work = new();
    private readonly Thread _thread;

    public ThreadVmQueue(string label)
    {
        _thread = new Thread(Run) { IsBackground = true, Name = label };
        _thread.Start();
    }

    public nint NativeQueue => 0;

    public Task<T> RunAsync<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _work.Add(VmQueues.Wrap(work, done));
        }
        catch (InvalidOperationException)
        {
            done.TrySetException(new ObjectDisposedException(nameof(ThreadVmQueue)));
        }
        return done.Task;
    }

    private void Run()
    {
        foreach (var item in _work.GetConsumingEnumerable()) item();
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        if (Thread.CurrentThread != _thread) _thread.Join();
        _work.Dispose();
    }
}

/// <summary>A serial libdispatch queue (macOS): work goes in with dispatch_async_f.</summary>
internal sealed unsafe partial class DispatchVmQueue : IVmQueue
{
    private const string LibSystem = "/usr/lib/libSystem.B.dylib";
    private nint _queue;

    [LibraryImport(LibSystem, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint dispatch_queue_create(string label, nint attributes);

    [LibraryImport(LibSystem)]
    private static partial void dispatch_async_f(nint queue, nint context, delegate* unmanaged<nint, void> work);

    [LibraryImport(LibSystem)]
    private static partial void dispatch_release(nint obj);

    public DispatchVmQueue(string label) => _queue = dispatch_queue_create(label, 0); // 0: serial

    public nint NativeQueue => _queue;

    public Task<T> RunAsync<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        ObjectDisposedException.ThrowIf(_queue == 0, this);
        dispatch_async_f(_queue, NativeHandles.Alloc(VmQueues.Wrap(work, done)), &Trampoline);
        return done.Task;
    }

    [UnmanagedCallersOnly]
    private static void Trampoline(nint context)
    {
        var work = NativeHandles.Target<Action>(context);
        NativeHandles.Free(context);
        work?.Invoke(); // Wrap catches everything
    }

    public void Dispose()
    {
        // Items already queued keep the queue alive until they ran (libdispatch retains it for them).
        if (_queue != 0) dispatch_release(_queue);
        _queue = 0;
    }
}
