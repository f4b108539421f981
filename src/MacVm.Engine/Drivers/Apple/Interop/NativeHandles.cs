using System.Runtime.InteropServices;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>
/// The only way managed state reaches native code: strong GCHandles, counted so tests can prove that
/// every handle given to a block or a runtime-made object was freed (a leak keeps the object alive forever).
/// </summary>
internal static class NativeHandles
{
    private static long s_allocated;
    private static long s_freed;

    /// <summary>Handles allocated and not yet freed.</summary>
    public static long Live => Interlocked.Read(ref s_allocated) - Interlocked.Read(ref s_freed);

    /// <summary>A strong handle to <paramref name="target"/>, as a pointer-sized value.</summary>
    public static nint Alloc(object target)
    {
        Interlocked.Increment(ref s_allocated);
        return GCHandle.ToIntPtr(GCHandle.Alloc(target));
    }

    /// <summary>The target of a handle made by <see cref="Alloc"/>.</summary>
    public static T? Target<T>(nint handle) where T : class => handle == 0 ? null : GCHandle.FromIntPtr(handle).Target as T;

    /// <summary>Frees a handle made by <see cref="Alloc"/> (0 is ignored).</summary>
    public static void Free(nint handle)
    {
        if (handle == 0) return;
        GCHandle.FromIntPtr(handle).Free();
        Interlocked.Increment(ref s_freed);
    }
}
