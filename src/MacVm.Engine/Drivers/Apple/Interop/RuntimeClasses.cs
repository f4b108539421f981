using System.Runtime.InteropServices;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>What a VZVirtualMachineDelegate made by <see cref="RuntimeClasses"/> forwards to.</summary>
internal interface IVmDelegateTarget
{
    /// <summary>guestDidStopVirtualMachine:</summary>
    void GuestDidStop();

    /// <summary>virtualMachine:didStopWithError:</summary>
    void DidStopWithError(NSErrorInfo? error);

    /// <summary>virtualMachine:networkDevice:attachmentWasDisconnectedWithError:</summary>
    void AttachmentDisconnected(NSErrorInfo? error);
}

/// <summary>What a VZVirtioSocketListenerDelegate made by <see cref="RuntimeClasses"/> forwards to.</summary>
internal interface ISocketListenerTarget
{
    /// <summary>listener:shouldAcceptNewConnection:fromSocketDevice: with the connection's file descriptor (owned by the connection).</summary>
    bool ShouldAccept(int fileDescriptor, uint destinationPort);
}

/// <summary>
/// Objective-C classes made at run time (objc_allocateClassPair) whose methods are
/// [UnmanagedCallersOnly] functions. Each instance holds one GCHandle to its managed target in a raw
/// pointer ivar (stored by offset: Apple's object_setIvar may retain), freed in dealloc.
/// Managed exceptions never cross back: they are recorded by <see cref="CallbackFailures"/>.
/// </summary>
internal static unsafe class RuntimeClasses
{
    private const string TargetIvar = "_macvmTarget";
    private static readonly object s_gate = new();
    private static nint s_vmDelegateClass, s_listenerDelegateClass, s_vmOffset, s_listenerOffset;

    /// <summary>Instances alive (made and not yet deallocated), for leak tests.</summary>
    public static long LiveInstances => Interlocked.Read(ref s_live);

    private static long s_live;

    /// <summary>A new VZVirtualMachineDelegate (+1) forwarding to <paramref name="target"/>.</summary>
    public static nint NewVmDelegate(IVmDelegateTarget target)
    {
        EnsureClasses();
        return NewInstance(s_vmDelegateClass, s_vmOffset, target);
    }

    /// <summary>A new VZVirtioSocketListenerDelegate (+1) forwarding to <paramref name="target"/>.</summary>
    public static nint NewListenerDelegate(ISocketListenerTarget target)
    {
        EnsureClasses();
        return NewInstance(s_listenerDelegateClass, s_listenerOffset, target);
    }

    private static nint NewInstance(nint cls, nint offset, object target)
    {
        var obj = Msg.Id(Msg.Id(cls, Sel.Alloc), Sel.Init);
        *(nint*)(obj + offset) = NativeHandles.Alloc(target);
        Interlocked.Increment(ref s_live);
        return obj;
    }

    private static void EnsureClasses()
    {
        lock (s_gate)
        {
            if (s_vmDelegateClass != 0) return;
            var nsObject = ObjC.GetClass("NSObject");

            var vm = MakeClass(nsObject, "MacVmVirtualMachineDelegate", "VZVirtualMachineDelegate");
            ObjC.AddMethod(vm, Sel.GuestDidStopVirtualMachine, (nint)(delegate* unmanaged<nint, nint, nint, void>)&GuestDidStop, "v24@0:8@16");
            ObjC.AddMethod(vm, Sel.VirtualMachineDidStopWithError, (nint)(delegate* unmanaged<nint, nint, nint, nint, void>)&DidStopWithError, "v32@0:8@16@24");
            ObjC.AddMethod(vm, Sel.AttachmentWasDisconnected, (nint)(delegate* unmanaged<nint, nint, nint, nint, nint, void>)&AttachmentDisconnected, "v40@0:8@16@24@32");
            ObjC.AddMethod(vm, Sel.Dealloc, (nint)(delegate* unmanaged<nint, nint, void>)&Dealloc, "v16@0:8");
            ObjC.RegisterClassPair(vm);

            var listener = MakeClass(nsObject, "MacVmSocketListenerDelegate", "VZVirtioSocketListenerDelegate");
            ObjC.AddMethod(listener, Sel.ListenerShouldAccept, (nint)(delegate* unmanaged<nint, nint, nint, nint, nint, byte>)&ShouldAccept,
                ObjC.BoolEncoding + "40@0:8@16@24@32");
            ObjC.AddMethod(listener, Sel.Dealloc, (nint)(delegate* unmanaged<nint, nint, void>)&Dealloc, "v16@0:8");
            ObjC.RegisterClassPair(listener);

            s_vmOffset = ObjC.IvarOffset(vm, TargetIvar);
            s_listenerOffset = ObjC.IvarOffset(listener, TargetIvar);
            s_listenerDelegateClass = listener;
            s_vmDelegateClass = vm;
        }
    }

    // objc_allocateClassPair fails for a name in use (another load context of this assembly made it):
    // such a class's methods would call into the other context, so take a fresh name instead.
    private static nint MakeClass(nint superclass, string name, string protocol)
    {
        var cls = ObjC.AllocateClassPair(superclass, name);
        for (var i = 2; cls == 0 && i < 100; i++) cls = ObjC.AllocateClassPair(superclass, $"{name}{i}");
        if (cls == 0) throw new ObjCException($"objc_allocateClassPair could not make {name}.");
        ObjC.AddPointerIvar(cls, TargetIvar);
        ObjC.TryAddProtocol(cls, protocol);
        return cls;
    }

    private static T? TargetOf<T>(nint self) where T : class
    {
        var cls = ObjC.ClassOf(self);
        var offset = cls == s_vmDelegateClass ? s_vmOffset : s_listenerOffset;
        return NativeHandles.Target<T>(*(nint*)(self + offset));
    }

    [UnmanagedCallersOnly]
    private static void GuestDidStop(nint self, nint cmd, nint vm)
    {
        try
        {
            TargetOf<IVmDelegateTarget>(self)?.GuestDidStop();
        }
        catch (Exception ex)
        {
            CallbackFailures.Record(ex);
        }
    }

    [UnmanagedCallersOnly]
    private static void DidStopWithError(nint self, nint cmd, nint vm, nint error)
    {
        try
        {
            TargetOf<IVmDelegateTarget>(self)?.DidStopWithError(NS.Error(error));
        }
        catch (Exception ex)
        {
            CallbackFailures.Record(ex);
        }
    }

    [UnmanagedCallersOnly]
    private static void AttachmentDisconnected(nint self, nint cmd, nint vm, nint device, nint error)
    {
        try
        {
            TargetOf<IVmDelegateTarget>(self)?.AttachmentDisconnected(NS.Error(error));
        }
        catch (Exception ex)
        {
            CallbackFailures.Record(ex);
        }
    }

    [UnmanagedCallersOnly]
    private static byte ShouldAccept(nint self, nint cmd, nint listener, nint connection, nint device)
    {
        try
        {
            var target = TargetOf<ISocketListenerTarget>(self);
            return target is not null && target.ShouldAccept(Msg.Int(connection, Sel.FileDescriptor), Msg.UInt(connection, s_destinationPort)) ? (byte)1 : (byte)0;
        }
        catch (Exception ex)
        {
            CallbackFailures.Record(ex);
            return 0;
        }
    }

    private static readonly Selector s_destinationPort = new("destinationPort");

    [UnmanagedCallersOnly]
    private static void Dealloc(nint self, nint cmd)
    {
        var cls = ObjC.ClassOf(self);
        var offset = cls == s_vmDelegateClass ? s_vmOffset : s_listenerOffset;
        var slot = (nint*)(self + offset);
        NativeHandles.Free(*slot);
        *slot = 0;
        Interlocked.Decrement(ref s_live);
        // [super dealloc], looked up from the registered class's superclass (never from self's class).
        var superDealloc = ObjC.MethodImplementation(ObjC.Superclass(cls), Sel.Dealloc.Handle);
        ((delegate* unmanaged<nint, nint, void>)superDealloc)(self, cmd);
    }
}
