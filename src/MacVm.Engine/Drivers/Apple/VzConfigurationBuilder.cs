using System.Security.Cryptography;
using System.Text;
using MacVm.Engine.Drivers.Apple.Interop;
using MacVm.Engine.Operations;
using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Apple;

/// <summary>
/// Builds the VZVirtualMachineConfiguration for a <see cref="VmConfiguration"/>, on the VM's queue inside
/// a pool. macOS guests (a <see cref="BootSpec.MacPlatform"/>): Mac platform, macOS boot loader, 1920×1200
/// graphics, keyboard and trackpad. Linux guests: kernel, initramfs and command line, a virtio console.
/// Both: the virtio block disk, one virtio NIC with a fixed MAC, a virtio socket device, an optional
/// VirtioFS share. Every file is checked before the framework sees it: Apple raises Objective-C
/// exceptions for bad URLs, and those cannot cross into .NET.
/// </summary>
internal sealed class VzConfigurationBuilder : IDisposable
{
    /// <summary>Display size of macOS guests, as the seed's host uses.</summary>
    public const int DisplayWidth = 1920, DisplayHeight = 1200, DisplayPixelsPerInch = 80;

    private readonly List<nint> _owned = new();

    /// <summary>The serial console's pipe ends the VM does not own: (read end of the guest's output, write end of its input).</summary>
    public (int OutputRead, int InputWrite)? Console { get; private set; }

    /// <summary>Makes the configuration (+1, caller releases); throws <see cref="MacVmException"/> when it is not valid.</summary>
    public nint Build(VmConfiguration config, VmPaths paths, NicAttachment attachment, System.Net.Sockets.Socket nicGuestEnd)
    {
        var vz = NS.New("VZVirtualMachineConfiguration");
        try
        {
            var mac = config.Boot.MacPlatform;
            if (mac is not null) ConfigureMac(vz, mac, paths);
            else ConfigureLinux(vz, config);
            Msg.Void(vz, Sel.SetCpuCount, (ulong)config.CpuCount);
            Msg.Void(vz, Sel.SetMemorySize, (ulong)config.MemoryMB * 1024 * 1024);

            if (config.Boot.DiskFile is { } disk)
                Msg.Void(vz, Sel.SetStorageDevices, NS.Array(Keep(Msg.Id(NS.Alloc("VZVirtioBlockDeviceConfiguration"), Sel.InitWithAttachment, DiskAttachment(paths.Disk(disk))))));

            var nic = Keep(NS.New("VZVirtioNetworkDeviceConfiguration"));
            var address = Keep(Msg.Id(NS.Alloc("VZMACAddress"), Sel.InitWithString, NS.String(MacAddressOf(config))));
            if (address == 0) throw Invalid($"'{config.MacAddress}' is not a MAC address (give aa:bb:cc:dd:ee:ff).");
            Msg.Void(nic, Sel.SetMacAddress, address);
            var attached = Keep(NewAttachment(attachment, nicGuestEnd));
            if (attached != 0) Msg.Void(nic, Sel.SetAttachment, attached);
            Msg.Void(vz, Sel.SetNetworkDevices, NS.Array(nic));

            Msg.Void(vz, Sel.SetSocketDevices, NS.Array(Keep(NS.New("VZVirtioSocketDeviceConfiguration"))));
            if (config.SharedDirectory is { } share) Msg.Void(vz, Sel.SetDirectorySharingDevices, NS.Array(Share(share, mac is not null)));

            unsafe
            {
                nint error = 0;
                if (!Msg.Bool(vz, Sel.ValidateWithError, &error))
                    throw Invalid($"Virtualization.framework refused the configuration: {NS.Error(error)}");
            }
            return vz;
        }
        catch
        {
            NS.Release(vz);
            throw;
        }
    }

    /// <summary>The MAC the VM's NIC gets: the configured one, else a locally administered one derived from the VM's id (stable across starts).</summary>
    public static string MacAddressOf(VmConfiguration config)
    {
        if (config.MacAddress is { } fixedAddress) return fixedAddress;
        var h = SHA256.HashData(config.Id.ToByteArray());
        return $"02:{h[0]:x2}:{h[1]:x2}:{h[2]:x2}:{h[3]:x2}:{h[4]:x2}";
    }

    /// <summary>
    /// A new attachment object (+1) for <paramref name="attachment"/>, or 0 for none: NAT, or a file handle on
    /// <paramref name="guestEnd"/> (the framework's end of the host relay's socket pair).
    /// </summary>
    public static nint NewAttachment(NicAttachment attachment, System.Net.Sockets.Socket guestEnd)
    {
        switch (attachment)
        {
            case NicAttachment.Nat:
                return NS.New("VZNATNetworkDeviceAttachment");
            case NicAttachment.HostRelay:
                // The attachment owns a duplicate of the descriptor: the framework closes its own copy when
                // the attachment goes, and ours stays for the next attachment.
                var fd = Libc.Dup((int)guestEnd.Handle);
                var handle = Msg.Id(NS.Alloc("NSFileHandle"), Sel.InitWithFileDescriptorCloseOnDealloc, fd, (byte)1);
                if (handle == 0)
                {
                    Libc.Close(fd);
                    throw new IOException("NSFileHandle refused the network socket's descriptor.");
                }
                var vz = Msg.Id(NS.Alloc("VZFileHandleNetworkDeviceAttachment"), Sel.InitWithFileHandle, handle);
                NS.Release(handle);
                return vz != 0 ? vz : throw new IOException("VZFileHandleNetworkDeviceAttachment refused the network socket.");
            default:
                return 0;
        }
    }

    private void ConfigureLinux(nint vz, VmConfiguration config)
    {
        var kernel = RequireFile(config.Boot.KernelPath ?? throw Invalid("A Linux guest needs a kernel: the image has none."), "kernel");
        var boot = Keep(Msg.Id(NS.Alloc("VZLinuxBootLoader"), Sel.InitWithKernelUrl, NS.FileUrl(kernel)));
        if (config.Boot.InitrdPath is { } initrd) Msg.Void(boot, Sel.SetInitialRamdiskUrl, NS.FileUrl(RequireFile(initrd, "initramfs")));
        var commandLine = string.Join(' ', new[] { config.Boot.KernelCommandLine, config.ExtraKernelArguments }.Where(s => !string.IsNullOrWhiteSpace(s)));
        Msg.Void(boot, Sel.SetCommandLine, NS.String(commandLine));
        Msg.Void(vz, Sel.SetBootLoader, boot);
        if (ObjC.TryGetClass("VZGenericPlatformConfiguration") != 0) Msg.Void(vz, Sel.SetPlatform, Keep(NS.New("VZGenericPlatformConfiguration")));

        // The console: the guest writes into a pipe the VM object owns the write end of (the read end is ours).
        var output = Libc.Pipe();
        var input = Libc.Pipe();
        Console = (output.Read, input.Write);
        var reading = Keep(Msg.Id(NS.Alloc("NSFileHandle"), Sel.InitWithFileDescriptorCloseOnDealloc, input.Read, (byte)1));
        var writing = Keep(Msg.Id(NS.Alloc("NSFileHandle"), Sel.InitWithFileDescriptorCloseOnDealloc, output.Write, (byte)1));
        var serialAttachment = Keep(Msg.Id(NS.Alloc("VZFileHandleSerialPortAttachment"), Sel.InitWithFileHandleForReadingFileHandleForWriting, reading, writing));
        var serial = Keep(NS.New("VZVirtioConsoleDeviceSerialPortConfiguration"));
        Msg.Void(serial, Sel.SetAttachment, serialAttachment);
        Msg.Void(vz, Sel.SetSerialPorts, NS.Array(serial));
    }

    private void ConfigureMac(nint vz, MacPlatformSpec mac, VmPaths paths)
    {
        if (ObjC.TryGetClass("VZMacPlatformConfiguration") == 0)
            throw Invalid("macOS guests need macOS 12 or later on Apple silicon (this framework has no VZMacPlatformConfiguration).");
        var platform = Keep(NS.New("VZMacPlatformConfiguration"));
        var model = Keep(Msg.Id(NS.Alloc("VZMacHardwareModel"), Sel.InitWithDataRepresentation, NS.Data(File.ReadAllBytes(RequireFile(mac.HardwareModelPath, "hardware model")))));
        if (model == 0) throw Invalid($"'{mac.HardwareModelPath}' is not a VZMacHardwareModel data representation.");
        if (!Msg.Bool(model, Sel.IsSupported)) throw Invalid("This Mac cannot run the guest's hardware model (VZMacHardwareModel isSupported is NO): the guest needs a newer host.");
        var identifier = Keep(Msg.Id(NS.Alloc("VZMacMachineIdentifier"), Sel.InitWithDataRepresentation, NS.Data(File.ReadAllBytes(RequireFile(mac.MachineIdentifierPath, "machine identifier")))));
        if (identifier == 0) throw Invalid($"'{mac.MachineIdentifierPath}' is not a VZMacMachineIdentifier data representation.");
        var auxiliaryPath = RequireFile(paths.Disk(mac.AuxiliaryStorageFile), "auxiliary storage");
        var auxiliaryClass = ObjC.GetClass("VZMacAuxiliaryStorage");
        // initWithURL: is macOS 13+; macOS 12 has initWithContentsOfURL:.
        var auxiliary = Keep(Msg.Id(Msg.Id(auxiliaryClass, Sel.Alloc),
            ObjC.ClassResponds(auxiliaryClass, Sel.InitWithUrl.Handle) ? Sel.InitWithUrl : Sel.InitWithContentsOfUrl, NS.FileUrl(auxiliaryPath)));
        Msg.Void(platform, Sel.SetHardwareModel, model);
        Msg.Void(platform, Sel.SetMachineIdentifier, identifier);
        Msg.Void(platform, Sel.SetAuxiliaryStorage, auxiliary);
        Msg.Void(vz, Sel.SetPlatform, platform);
        Msg.Void(vz, Sel.SetBootLoader, Keep(NS.New("VZMacOSBootLoader")));

        var display = Keep(Msg.Id(NS.Alloc("VZMacGraphicsDisplayConfiguration"), Sel.InitWithWidthHeightPpi, DisplayWidth, DisplayHeight, DisplayPixelsPerInch));
        var graphics = Keep(NS.New("VZMacGraphicsDeviceConfiguration"));
        Msg.Void(graphics, Sel.SetDisplays, NS.Array(display));
        Msg.Void(vz, Sel.SetGraphicsDevices, NS.Array(graphics));
        // The Mac keyboard is macOS 14+, the trackpad 13+; older hosts get the USB ones.
        var keyboard = ObjC.TryGetClass("VZMacKeyboardConfiguration") != 0 ? "VZMacKeyboardConfiguration" : "VZUSBKeyboardConfiguration";
        Msg.Void(vz, Sel.SetKeyboards, NS.Array(Keep(NS.New(keyboard))));
        var pointer = ObjC.TryGetClass("VZMacTrackpadConfiguration") != 0 ? "VZMacTrackpadConfiguration" : "VZUSBScreenCoordinatePointingDeviceConfiguration";
        Msg.Void(vz, Sel.SetPointingDevices, NS.Array(Keep(NS.New(pointer))));
    }

    private nint DiskAttachment(string path)
    {
        RequireFile(path, "disk");
        unsafe
        {
            nint error = 0;
            var attachment = Msg.Id(NS.Alloc("VZDiskImageStorageDeviceAttachment"), Sel.InitWithUrlReadOnlyError, NS.FileUrl(path), (byte)0, &error);
            return attachment != 0 ? Keep(attachment) : throw Invalid($"The disk '{path}' cannot be attached: {NS.Error(error)}");
        }
    }

    private nint Share(string directory, bool macGuest)
    {
        if (!Directory.Exists(directory)) throw Invalid($"The shared folder '{directory}' does not exist.");
        var shared = Keep(Msg.Id(NS.Alloc("VZSharedDirectory"), Sel.InitWithUrlReadOnly, NS.FileUrl(Path.GetFullPath(directory)), (byte)0));
        var share = Keep(Msg.Id(NS.Alloc("VZSingleDirectoryShare"), Sel.InitWithDirectory, shared));
        var deviceClass = ObjC.GetClass("VZVirtioFileSystemDeviceConfiguration");
        // macOS guests mount the automount tag by themselves (macOS 13+); Linux guests mount "macvm".
        var tag = macGuest && ObjC.Responds(deviceClass, Sel.MacOSGuestAutomountTag) ? Msg.Id(deviceClass, Sel.MacOSGuestAutomountTag) : NS.String("macvm");
        var device = Keep(Msg.Id(Msg.Id(deviceClass, Sel.Alloc), Sel.InitWithTag, tag));
        Msg.Void(device, Sel.SetShare, share);
        return device;
    }

    private static string RequireFile(string path, string what) =>
        File.Exists(path) ? Path.GetFullPath(path) : throw Invalid($"The {what} file '{path}' does not exist.");

    private static MacVmException Invalid(string message) => new(MacVmErrorKind.HostFailed, "InvalidConfiguration", message);

    private nint Keep(nint obj)
    {
        if (obj != 0) _owned.Add(obj);
        return obj;
    }

    /// <summary>Releases the intermediate objects (the configuration retains or copies what it needs).</summary>
    public void Dispose()
    {
        foreach (var obj in _owned) NS.Release(obj);
        _owned.Clear();
    }
}
