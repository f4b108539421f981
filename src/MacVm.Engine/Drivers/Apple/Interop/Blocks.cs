using System.Runtime.InteropServices;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>
/// Objective-C blocks built by hand (the clang block ABI): a literal <c>{isa, flags, reserved, invoke,
/// descriptor, captured handle}</c> in native memory with copy/dispose helpers and a type signature.
/// The literal plays the part of a stack block: the callee Block_copy's it if it keeps it (the copy
/// helper gives the heap copy its own GCHandle, the dispose helper frees it), and the caller frees the
/// literal and its own handle as soon as the send returns.
/// </summary>
internal sealed unsafe class NativeBlock : IDisposable
{
    private const int BlockHasCopyDispose = 1 << 25;
    private const int BlockHasSignature = 1 << 30;

    [StructLayout(LayoutKind.Sequential)]
    private struct Literal
    {
        public nint Isa;
        public int Flags;
        public int Reserved;
        public nint Invoke;
        public Descriptor* Descriptor;
        public nint Handle;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Descriptor
    {
        public nuint Reserved;
        public nuint Size;
        public nint Copy;
        public nint Dispose;
        public byte* Signature;
    }

    private static nint s_stackBlockIsa;
    // Descriptors are immortal: heap copies point at them for as long as they live.
    private static Descriptor* s_errorDescriptor;
    private static Descriptor* s_objectErrorDescriptor;

    private Literal* _literal;

    private NativeBlock(Descriptor* descriptor, nint invoke, Delegate callback)
    {
        _literal = (Literal*)NativeMemory.AllocZeroed((nuint)sizeof(Literal));
        _literal->Isa = s_stackBlockIsa;
        _literal->Flags = BlockHasCopyDispose | BlockHasSignature;
        _literal->Invoke = invoke;
        _literal->Descriptor = descriptor;
        _literal->Handle = NativeHandles.Alloc(callback);
    }

    /// <summary>The block pointer to pass as an argument.</summary>
    public nint Pointer => (nint)_literal;

    /// <summary>Called once with the address of <c>_NSConcreteStackBlock</c> from the blocks runtime the framework uses.</summary>
    public static void Initialize(nint stackBlockIsa)
    {
        s_stackBlockIsa = stackBlockIsa;
        s_errorDescriptor = MakeDescriptor("v16@?0@8");
        s_objectErrorDescriptor = MakeDescriptor("v24@?0@8@16");
    }

    private static Descriptor* MakeDescriptor(string signature)
    {
        var d = (Descriptor*)NativeMemory.AllocZeroed((nuint)sizeof(Descriptor));
        d->Size = (nuint)sizeof(Literal);
        d->Copy = (nint)(delegate* unmanaged<Literal*, Literal*, void>)&CopyHelper;
        d->Dispose = (nint)(delegate* unmanaged<Literal*, void>)&DisposeHelper;
        d->Signature = ObjC.Utf8(signature);
        return d;
    }

    /// <summary>A <c>void (^)(NSError *)</c> completion handler.</summary>
    public static NativeBlock ForError(Action<nint> onCompletion) =>
        new(s_errorDescriptor, (nint)(delegate* unmanaged<Literal*, nint, void>)&InvokeError, onCompletion);

    /// <summary>A <c>void (^)(id, NSError *)</c> completion handler (e.g. a socket connection or an error).</summary>
    public static NativeBlock ForObjectAndError(Action<nint, nint> onCompletion) =>
        new(s_objectErrorDescriptor, (nint)(delegate* unmanaged<Literal*, nint, nint, void>)&InvokeObjectError, onCompletion);

    [UnmanagedCallersOnly]
    private static void InvokeError(Literal* block, nint error)
    {
        try
        {
            NativeHandles.Target<Action<nint>>(block->Handle)?.Invoke(error);
        }
        catch (Exception ex)
        {
            CallbackFailures.Record(ex);
        }
    }

    [UnmanagedCallersOnly]
    private static void InvokeObjectError(Literal* block, nint obj, nint error)
    {
        try
        {
            NativeHandles.Target<Action<nint, nint>>(block->Handle)?.Invoke(obj, error);
        }
        catch (Exception ex)
        {
            CallbackFailures.Record(ex);
        }
    }

    // _Block_copy has memmove'd the literal: the copy gets a handle of its own.
    [UnmanagedCallersOnly]
    private static void CopyHelper(Literal* destination, Literal* source)
    {
        var target = NativeHandles.Target<object>(source->Handle);
        destination->Handle = target is null ? 0 : NativeHandles.Alloc(target);
    }

    [UnmanagedCallersOnly]
    private static void DisposeHelper(Literal* block)
    {
        NativeHandles.Free(block->Handle);
        block->Handle = 0;
    }

    /// <summary>Frees the literal and its handle; the callee's heap copies live on with their own.</summary>
    public void Dispose()
    {
        if (_literal == null) return;
        NativeHandles.Free(_literal->Handle);
        NativeMemory.Free(_literal);
        _literal = null;
    }
}

/// <summary>
/// Exceptions thrown by managed code inside a native callback. They cannot propagate (the process
/// would abort), so they are kept here, counted, and written to the host log by whoever listens.
/// </summary>
internal static class CallbackFailures
{
    private static long s_count;

    /// <summary>Raised with every exception caught at a native boundary.</summary>
    public static event Action<Exception>? Failed;

    /// <summary>How many callbacks threw since the process started.</summary>
    public static long Count => Interlocked.Read(ref s_count);

    /// <summary>Notes an exception a callback threw.</summary>
    public static void Record(Exception ex)
    {
        Interlocked.Increment(ref s_count);
        try
        {
            Failed?.Invoke(ex);
        }
        catch (Exception)
        {
            // A listener that throws must not take the callback down either.
        }
    }
}
