using System.Runtime.InteropServices;
using System.Text;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>What an NSError said, copied out while the error object was alive.</summary>
/// <param name="Domain">The error domain (VZErrorDomain, NSPOSIXErrorDomain, …).</param>
/// <param name="Code">The error code.</param>
/// <param name="Description">Its localized description.</param>
internal sealed record NSErrorInfo(string Domain, long Code, string Description)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Description} ({Domain} {Code})";
}

/// <summary>
/// Foundation helpers with Cocoa's ownership rules: <c>Alloc…</c>/<c>New</c> return +1 objects the caller
/// releases; everything else returns autoreleased objects that live until the current pool drains.
/// </summary>
internal static unsafe class NS
{
    private static nint s_nsString, s_nsUrl, s_nsArray, s_nsData, s_pool;

    /// <summary>Caches the Foundation classes; called once the framework is loaded.</summary>
    public static void Initialize()
    {
        s_nsString = ObjC.GetClass("NSString");
        s_nsUrl = ObjC.GetClass("NSURL");
        s_nsArray = ObjC.GetClass("NSArray");
        s_nsData = ObjC.GetClass("NSData");
        s_pool = ObjC.GetClass("NSAutoreleasePool");
    }

    /// <summary>[[cls alloc] init]: +1.</summary>
    public static nint New(string cls) => Msg.Id(Msg.Id(ObjC.GetClass(cls), Sel.Alloc), Sel.Init);

    /// <summary>[cls alloc]: +1, to be sent an initializer.</summary>
    public static nint Alloc(string cls) => Msg.Id(ObjC.GetClass(cls), Sel.Alloc);

    /// <summary>Sends release (nil is ignored).</summary>
    public static void Release(nint obj)
    {
        if (obj != 0) Msg.Void(obj, Sel.Release);
    }

    /// <summary>Sends retain; returns the object.</summary>
    public static nint Retain(nint obj) => obj == 0 ? 0 : Msg.Id(obj, Sel.Retain);

    /// <summary>An autoreleased NSString.</summary>
    public static nint String(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value + "\0");
        fixed (byte* p = bytes) return Msg.Id(s_nsString, Sel.StringWithUtf8String, p);
    }

    /// <summary>The text of an NSString, or null for nil.</summary>
    public static string? ToManaged(nint nsString) =>
        nsString == 0 ? null : Marshal.PtrToStringUTF8(Msg.Id(nsString, Sel.Utf8String));

    /// <summary>An autoreleased file NSURL.</summary>
    public static nint FileUrl(string path) => Msg.Id(s_nsUrl, Sel.FileUrlWithPath, String(path));

    /// <summary>An autoreleased NSArray of the objects.</summary>
    public static nint Array(params nint[] items)
    {
        fixed (nint* p = items) return Msg.Id(s_nsArray, Sel.ArrayWithObjectsCount, p, (nuint)items.Length);
    }

    /// <summary>The number of objects in an NSArray.</summary>
    public static int Count(nint array) => (int)Msg.ULong(array, Sel.Count);

    /// <summary>The object at <paramref name="index"/> of an NSArray (not owned).</summary>
    public static nint At(nint array, int index) => Msg.Id(array, Sel.ObjectAtIndex, (nuint)index);

    /// <summary>An autoreleased NSData with a copy of <paramref name="bytes"/>.</summary>
    public static nint Data(byte[] bytes)
    {
        fixed (byte* p = bytes) return Msg.Id(s_nsData, Sel.DataWithBytesLength, p, (nuint)bytes.Length);
    }

    /// <summary>An autoreleased empty NSDictionary.</summary>
    public static nint EmptyDictionary() => Msg.Id(ObjC.GetClass("NSDictionary"), s_dictionary);

    private static readonly Selector s_dictionary = new("dictionary");

    /// <summary>The bytes of an NSData.</summary>
    public static byte[] Bytes(nint data)
    {
        var length = (int)Msg.ULong(data, Sel.Length);
        var result = new byte[length];
        if (length > 0) Marshal.Copy(Msg.Id(data, Sel.Bytes), result, 0, length);
        return result;
    }

    /// <summary>Copies an NSError out (null for nil).</summary>
    public static NSErrorInfo? Error(nint error) => error == 0 ? null : new NSErrorInfo(
        ToManaged(Msg.Id(error, Sel.Domain)) ?? "", Msg.Long(error, Sel.Code), ToManaged(Msg.Id(error, Sel.LocalizedDescription)) ?? "");

    /// <summary>Whether <paramref name="obj"/> is a kind of the class named <paramref name="cls"/>.</summary>
    public static bool IsKindOf(nint obj, string cls) => obj != 0 && ObjC.TryGetClass(cls) is var c && c != 0 && Msg.Bool(obj, Sel.IsKindOfClass, c);

    /// <summary>An autorelease pool, drained by Dispose (every thread that calls in needs one).</summary>
    public static AutoreleasePool Pool() => new(Msg.Id(Msg.Id(s_pool, Sel.Alloc), Sel.Init));

    /// <summary>A pool made by <see cref="Pool"/>.</summary>
    public readonly struct AutoreleasePool : IDisposable
    {
        private readonly nint _pool;

        public AutoreleasePool(nint pool) => _pool = pool;

        /// <summary>Drains (and thereby releases) the pool.</summary>
        public void Dispose()
        {
            if (_pool != 0) Msg.Void(_pool, Sel.Drain);
        }
    }
}
