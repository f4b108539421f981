using System.Runtime.InteropServices;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>CGRect / NSRect: four doubles, passed and returned by value under the platform's C ABI.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CGRect
{
    public double X, Y, Width, Height;

    public CGRect(double x, double y, double width, double height)
    {
        X = x;
        Y = y;
        Width = width;
        Height = height;
    }
}

/// <summary>
/// Message sends: the IMP is looked up (and cached per selector) and called through an exact,
/// non-variadic function-pointer type per method shape. This works on Apple's and GCC's runtimes
/// alike (GCC has no objc_msgSend). BOOL travels as a byte. Methods are named by their return type.
/// </summary>
internal static unsafe class Msg
{
    public static nint Id(nint r, Selector s) => ((delegate* unmanaged<nint, nint, nint>)s.ImpFor(r))(r, s.Handle);
    public static nint Id(nint r, Selector s, nint a) => ((delegate* unmanaged<nint, nint, nint, nint>)s.ImpFor(r))(r, s.Handle, a);
    public static nint Id(nint r, Selector s, nint a, nint b) => ((delegate* unmanaged<nint, nint, nint, nint, nint>)s.ImpFor(r))(r, s.Handle, a, b);
    public static nint Id(nint r, Selector s, byte* a) => ((delegate* unmanaged<nint, nint, byte*, nint>)s.ImpFor(r))(r, s.Handle, a);
    public static nint Id(nint r, Selector s, nint a, byte b) => ((delegate* unmanaged<nint, nint, nint, byte, nint>)s.ImpFor(r))(r, s.Handle, a, b);
    public static nint Id(nint r, Selector s, nint a, byte b, nint* error) => ((delegate* unmanaged<nint, nint, nint, byte, nint*, nint>)s.ImpFor(r))(r, s.Handle, a, b, error);
    public static nint Id(nint r, Selector s, int a) => ((delegate* unmanaged<nint, nint, int, nint>)s.ImpFor(r))(r, s.Handle, a);
    public static nint Id(nint r, Selector s, int a, byte b) => ((delegate* unmanaged<nint, nint, int, byte, nint>)s.ImpFor(r))(r, s.Handle, a, b);
    public static nint Id(nint r, Selector s, long a, long b, long c) => ((delegate* unmanaged<nint, nint, long, long, long, nint>)s.ImpFor(r))(r, s.Handle, a, b, c);
    public static nint Id(nint r, Selector s, nint* items, nuint count) => ((delegate* unmanaged<nint, nint, nint*, nuint, nint>)s.ImpFor(r))(r, s.Handle, items, count);
    public static nint Id(nint r, Selector s, void* bytes, nuint length) => ((delegate* unmanaged<nint, nint, void*, nuint, nint>)s.ImpFor(r))(r, s.Handle, bytes, length);
    public static nint Id(nint r, Selector s, nuint a) => ((delegate* unmanaged<nint, nint, nuint, nint>)s.ImpFor(r))(r, s.Handle, a);
    public static nint Id(nint r, Selector s, CGRect a) => ((delegate* unmanaged<nint, nint, CGRect, nint>)s.ImpFor(r))(r, s.Handle, a);
    public static nint Id(nint r, Selector s, nuint a, nint b) => ((delegate* unmanaged<nint, nint, nuint, nint, nint>)s.ImpFor(r))(r, s.Handle, a, b);

    public static void Void(nint r, Selector s) => ((delegate* unmanaged<nint, nint, void>)s.ImpFor(r))(r, s.Handle);
    public static void Void(nint r, Selector s, nint a) => ((delegate* unmanaged<nint, nint, nint, void>)s.ImpFor(r))(r, s.Handle, a);
    public static void Void(nint r, Selector s, nint a, nint b) => ((delegate* unmanaged<nint, nint, nint, nint, void>)s.ImpFor(r))(r, s.Handle, a, b);
    public static void Void(nint r, Selector s, nint a, uint b) => ((delegate* unmanaged<nint, nint, nint, uint, void>)s.ImpFor(r))(r, s.Handle, a, b);
    public static void Void(nint r, Selector s, uint a) => ((delegate* unmanaged<nint, nint, uint, void>)s.ImpFor(r))(r, s.Handle, a);
    public static void Void(nint r, Selector s, uint a, nint b) => ((delegate* unmanaged<nint, nint, uint, nint, void>)s.ImpFor(r))(r, s.Handle, a, b);
    public static void Void(nint r, Selector s, ulong a) => ((delegate* unmanaged<nint, nint, ulong, void>)s.ImpFor(r))(r, s.Handle, a);
    public static void Void(nint r, Selector s, CGRect a, nint b) => ((delegate* unmanaged<nint, nint, CGRect, nint, void>)s.ImpFor(r))(r, s.Handle, a, b);

    public static bool Bool(nint r, Selector s) => ((delegate* unmanaged<nint, nint, byte>)s.ImpFor(r))(r, s.Handle) != 0;
    public static bool Bool(nint r, Selector s, nint a) => ((delegate* unmanaged<nint, nint, nint, byte>)s.ImpFor(r))(r, s.Handle, a) != 0;
    public static bool Bool(nint r, Selector s, nint* error) => ((delegate* unmanaged<nint, nint, nint*, byte>)s.ImpFor(r))(r, s.Handle, error) != 0;

    public static long Long(nint r, Selector s) => ((delegate* unmanaged<nint, nint, long>)s.ImpFor(r))(r, s.Handle);
    public static ulong ULong(nint r, Selector s) => ((delegate* unmanaged<nint, nint, ulong>)s.ImpFor(r))(r, s.Handle);
    public static int Int(nint r, Selector s) => ((delegate* unmanaged<nint, nint, int>)s.ImpFor(r))(r, s.Handle);
    public static uint UInt(nint r, Selector s) => ((delegate* unmanaged<nint, nint, uint>)s.ImpFor(r))(r, s.Handle);
    public static CGRect Rect(nint r, Selector s) => ((delegate* unmanaged<nint, nint, CGRect>)s.ImpFor(r))(r, s.Handle);
}
