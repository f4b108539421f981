using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>
/// The Objective-C runtime's C API, resolved at run time from whichever runtime is loaded: Apple's
/// libobjc.A.dylib on macOS, GCC's libobjc.so.4 under the Linux tests. Only functions both export are
/// required; <c>object_getClass</c> is used when exported (Apple: packed isa, tagged pointers) and
/// replaced by reading the isa word on GCC's runtime, where it is an inline.
/// </summary>
internal static unsafe class ObjC
{
    private static delegate* unmanaged<byte*, nint> s_getClass;
    private static delegate* unmanaged<byte*, nint> s_registerName;
    private static delegate* unmanaged<nint, byte*> s_getName;
    private static delegate* unmanaged<nint, nint, nint> s_getImp;
    private static delegate* unmanaged<nint, nint, byte> s_responds;
    private static delegate* unmanaged<nint, nint> s_objectGetClass;
    private static delegate* unmanaged<nint, nint> s_getSuperclass;
    private static delegate* unmanaged<nint, byte*, nuint, nint> s_allocateClassPair;
    private static delegate* unmanaged<nint, nint, nint, byte*, byte> s_addMethod;
    private static delegate* unmanaged<nint, byte*, nuint, byte, byte*, byte> s_addIvar;
    private static delegate* unmanaged<nint, void> s_registerClassPair;
    private static delegate* unmanaged<nint, byte*, nint> s_getInstanceVariable;
    private static delegate* unmanaged<nint, nint> s_ivarGetOffset;
    private static delegate* unmanaged<byte*, nint> s_getProtocol;
    private static delegate* unmanaged<nint, nint, byte> s_addProtocol;
    private static readonly ConcurrentDictionary<string, nint> s_utf8 = new(StringComparer.Ordinal);

    /// <summary>True once <see cref="Bind"/> ran.</summary>
    public static bool IsBound { get; private set; }

    /// <summary>The BOOL type encoding of this runtime: 'B' on Apple arm64, 'c' on Apple x86_64, 'C' on GCC's runtime.</summary>
    public static string BoolEncoding { get; private set; } = "C";

    /// <summary>Resolves the runtime functions from the loaded runtime library.</summary>
    public static void Bind(nint runtime, bool apple)
    {
        nint Need(string name) => NativeLibrary.TryGetExport(runtime, name, out var p) ? p
            : throw new EntryPointNotFoundException($"The Objective-C runtime has no '{name}'.");
        nint Maybe(string name) => NativeLibrary.TryGetExport(runtime, name, out var p) ? p : 0;
        s_getClass = (delegate* unmanaged<byte*, nint>)Need("objc_getClass");
        s_registerName = (delegate* unmanaged<byte*, nint>)Need("sel_registerName");
        s_getName = (delegate* unmanaged<nint, byte*>)Need("class_getName");
        s_getImp = (delegate* unmanaged<nint, nint, nint>)Need("class_getMethodImplementation");
        s_responds = (delegate* unmanaged<nint, nint, byte>)Need("class_respondsToSelector");
        s_getSuperclass = (delegate* unmanaged<nint, nint>)Need("class_getSuperclass");
        s_allocateClassPair = (delegate* unmanaged<nint, byte*, nuint, nint>)Need("objc_allocateClassPair");
        s_addMethod = (delegate* unmanaged<nint, nint, nint, byte*, byte>)Need("class_addMethod");
        s_addIvar = (delegate* unmanaged<nint, byte*, nuint, byte, byte*, byte>)Need("class_addIvar");
        s_registerClassPair = (delegate* unmanaged<nint, void>)Need("objc_registerClassPair");
        s_getInstanceVariable = (delegate* unmanaged<nint, byte*, nint>)Need("class_getInstanceVariable");
        s_ivarGetOffset = (delegate* unmanaged<nint, nint>)Need("ivar_getOffset");
        s_getProtocol = (delegate* unmanaged<byte*, nint>)Maybe("objc_getProtocol");
        s_addProtocol = (delegate* unmanaged<nint, nint, byte>)Maybe("class_addProtocol");
        // Apple: must use the function (non-pointer isa on arm64, tagged pointers). GCC: it is an inline.
        s_objectGetClass = apple ? (delegate* unmanaged<nint, nint>)Need("object_getClass") : null;
        BoolEncoding = !apple ? "C" : RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "B" : "c";
        IsBound = true;
    }

    /// <summary>A NUL-terminated UTF-8 copy of <paramref name="s"/> that lives as long as the process (runtimes keep such pointers).</summary>
    public static byte* Utf8(string s) => (byte*)s_utf8.GetOrAdd(s, static x => Marshal.StringToCoTaskMemUTF8(x));

    /// <summary>The class named <paramref name="name"/>, or 0.</summary>
    public static nint TryGetClass(string name) => s_getClass(Utf8(name));

    /// <summary>The class named <paramref name="name"/>; throws <see cref="ObjCException"/> when the framework has none (an older macOS).</summary>
    public static nint GetClass(string name)
    {
        var cls = TryGetClass(name);
        return cls != 0 ? cls : throw new ObjCException($"The class {name} does not exist in this version of the framework.");
    }

    /// <summary>Registers (or finds) a selector.</summary>
    public static nint RegisterSelector(string name) => s_registerName(Utf8(name));

    /// <summary>The class of an object, or the metaclass of a class object.</summary>
    public static nint ClassOf(nint obj) => s_objectGetClass != null ? s_objectGetClass(obj) : *(nint*)obj;

    /// <summary>A class's name.</summary>
    public static string ClassName(nint cls) => Marshal.PtrToStringUTF8((nint)s_getName(cls)) ?? "?";

    /// <summary>The superclass of a class.</summary>
    public static nint Superclass(nint cls) => s_getSuperclass(cls);

    /// <summary>Whether instances of <paramref name="cls"/> respond to <paramref name="selector"/> (without the forwarding IMP).</summary>
    public static bool ClassResponds(nint cls, nint selector) => s_responds(cls, selector) != 0;

    /// <summary>Whether <paramref name="obj"/> (an instance or a class object) responds to <paramref name="selector"/>.</summary>
    public static bool Responds(nint obj, Selector selector) => obj != 0 && ClassResponds(ClassOf(obj), selector.Handle);

    /// <summary>The IMP of an instance method of <paramref name="cls"/> (a forwarding IMP when there is none: check first).</summary>
    public static nint MethodImplementation(nint cls, nint selector) => s_getImp(cls, selector);

    /// <summary>objc_allocateClassPair; 0 when the name is taken.</summary>
    public static nint AllocateClassPair(nint superclass, string name) => s_allocateClassPair(superclass, Utf8(name), 0);

    /// <summary>class_addMethod.</summary>
    public static void AddMethod(nint cls, Selector selector, nint imp, string types)
    {
        if (s_addMethod(cls, selector.Handle, imp, Utf8(types)) == 0)
            throw new ObjCException($"class_addMethod refused {selector.Name} on {ClassName(cls)}.");
    }

    /// <summary>Adds a pointer-sized, non-object instance variable.</summary>
    public static void AddPointerIvar(nint cls, string name)
    {
        if (s_addIvar(cls, Utf8(name), (nuint)IntPtr.Size, (byte)(IntPtr.Size == 8 ? 3 : 2), Utf8("^v")) == 0)
            throw new ObjCException($"class_addIvar refused {name} on {ClassName(cls)}.");
    }

    /// <summary>Adopts a protocol when both the runtime function and the protocol exist.</summary>
    public static void TryAddProtocol(nint cls, string protocol)
    {
        if (s_getProtocol == null || s_addProtocol == null) return;
        var p = s_getProtocol(Utf8(protocol));
        if (p != 0) s_addProtocol(cls, p);
    }

    /// <summary>objc_registerClassPair.</summary>
    public static void RegisterClassPair(nint cls) => s_registerClassPair(cls);

    /// <summary>The byte offset of an instance variable.</summary>
    public static nint IvarOffset(nint cls, string name)
    {
        var ivar = s_getInstanceVariable(cls, Utf8(name));
        return ivar != 0 ? s_ivarGetOffset(ivar) : throw new ObjCException($"{ClassName(cls)} has no instance variable {name}.");
    }
}

/// <summary>
/// A selector with a one-entry IMP cache: the last receiver class and its IMP. A send costs a class
/// read, a compare and an indirect call when the class repeats (it nearly always does).
/// </summary>
internal sealed class Selector
{
    private nint _handle;
    private ImpCacheEntry? _cache;

    /// <summary>Names the selector; it is registered with the runtime on first use.</summary>
    public Selector(string name) => Name = name;

    /// <summary>The selector's name, e.g. <c>startWithCompletionHandler:</c>.</summary>
    public string Name { get; }

    /// <summary>The runtime's SEL.</summary>
    public nint Handle
    {
        get
        {
            var h = _handle;
            return h != 0 ? h : _handle = ObjC.RegisterSelector(Name);
        }
    }

    /// <summary>
    /// The IMP <paramref name="receiver"/> runs for this selector. Throws <see cref="ObjCException"/> for nil
    /// (a message to nil is a driver bug here) and for a receiver that does not respond: the runtime would
    /// hand out a forwarding IMP that raises an Objective-C exception, which must never cross into .NET.
    /// </summary>
    public nint ImpFor(nint receiver)
    {
        if (receiver == 0) throw new ObjCException($"The message {Name} was sent to nil.");
        var cls = ObjC.ClassOf(receiver);
        var cached = _cache;
        return cached is not null && cached.Class == cls ? cached.Imp : Lookup(cls);
    }

    private nint Lookup(nint cls)
    {
        if (!ObjC.ClassResponds(cls, Handle))
            throw new ObjCException($"{ObjC.ClassName(cls)} does not respond to {Name} (not in this version of the framework?).");
        var imp = ObjC.MethodImplementation(cls, Handle);
        _cache = new ImpCacheEntry(cls, imp);
        return imp;
    }

    /// <inheritdoc/>
    public override string ToString() => Name;

    private sealed record ImpCacheEntry(nint Class, nint Imp);
}

/// <summary>A misuse of the Objective-C API caught before it reached the runtime (nil receiver, missing selector or class).</summary>
internal sealed class ObjCException : InvalidOperationException
{
    public ObjCException(string message) : base(message) { }
}
