using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// Builds QEMU's argument list from a VM's configuration. Pure: no file or process is touched, so
/// the exact command line is unit-tested. The device layout is fixed (ids, machine type, port names)
/// because a saved machine state only loads into the identical layout.
/// </summary>
public static class QemuCommandLine
{
    /// <summary>The virtio-serial port name the guest agent looks for.</summary>
    public const string AgentPortName = "org.macvm.agent";

    /// <summary>The virtio-serial port name of the guest IP channel (docs/guest-protocol.md).</summary>
    public const string GuestIpPortName = "org.macvm.ip";

    /// <summary>The machine type for x86_64 guests: pinned, so saved states load into later QEMUs.</summary>
    public const string X86MachineType = "pc-i440fx-7.2";

    /// <summary>The arguments after the QEMU executable.</summary>
    /// <param name="config">The VM.</param>
    /// <param name="paths">Where its sockets and disk are.</param>
    /// <param name="accelerator">The resolved accelerator: kvm, tcg or hvf.</param>
    /// <param name="restore">
    /// The snapshot to load: QEMU waits for its state (migrate-incoming) instead of booting, and maps the
    /// snapshot's memory image, when it has one, copy-on-write.
    /// </param>
    public static IReadOnlyList<string> Build(VmConfiguration config, VmPaths paths, string accelerator, RestoreSpec? restore = null)
    {
        var boot = config.Boot;
        var a = new List<string>
        {
            "-name", $"macvm-{config.Name},debug-threads=on",
            "-machine", $"{X86MachineType},accel={accelerator},memory-backend={MemoryBackendId}",
            "-object", MemoryBackend(config, paths, restore),
        };
        if (accelerator is "kvm" or "hvf") a.AddRange(new[] { "-cpu", "host" });
        a.AddRange(new[]
        {
            "-m", config.MemoryMB.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-smp", config.CpuCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-nodefaults", "-no-user-config", "-display", "none",
            // A guest reboot ends QEMU: the host decides what happens next, not the guest.
            "-no-reboot",
            "-qmp", $"unix:{paths.QmpSocket},server=on,wait=off",
            "-chardev", $"socket,id=serial0,path={paths.SerialSocket},server=on,wait=off",
            "-serial", "chardev:serial0",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", $"socket,id=agent0,path={paths.AgentSocket},server=on,wait=off",
            "-device", $"virtserialport,id=agentport,bus=vser0.0,chardev=agent0,name={AgentPortName}",
            "-chardev", $"socket,id=ip0,path={paths.GuestIpSocket},server=on,wait=off",
            "-device", $"virtserialport,id=ipport,bus=vser0.0,chardev=ip0,name={GuestIpPortName}",
            "-device", "VGA,id=vga0",
        });
        a.AddRange(Network(config, paths));
        if (boot.DiskFile is { } disk)
        {
            a.AddRange(new[]
            {
                "-blockdev", $"driver=file,node-name=file0,filename={Escape(paths.Disk(disk))}",
                "-blockdev", "driver=qcow2,node-name=disk0,file=file0",
                "-device", "virtio-blk-pci,id=blk0,drive=disk0",
            });
        }
        if (boot.KernelPath is { } kernel)
        {
            a.AddRange(new[] { "-kernel", kernel });
            if (boot.InitrdPath is { } initrd) a.AddRange(new[] { "-initrd", initrd });
            var cmdline = string.Join(' ', new[] { boot.KernelCommandLine, config.ExtraKernelArguments }.Where(s => !string.IsNullOrWhiteSpace(s)));
            if (cmdline.Length > 0) a.AddRange(new[] { "-append", cmdline });
        }
        if (restore is not null) a.AddRange(new[] { "-incoming", "defer" });
        return a;
    }

    /// <summary>The id of the guest's memory backend (and so of its RAM block in a saved state).</summary>
    public const string MemoryBackendId = "ram0";

    /// <summary>
    /// The guest's memory is always a file: shared with the host (share=on) while the VM runs from its own
    /// memory, so that a save writes it as a flat image beside the state; or, restoring a snapshot that has
    /// such an image, the image itself mapped private (share=off), so that every restored VM reads the
    /// snapshot's pages and copies only those it writes. Either way the RAM block is the same ("ram0"),
    /// so states load across both.
    /// </summary>
    private static string MemoryBackend(VmConfiguration config, VmPaths paths, RestoreSpec? restore)
    {
        var size = config.MemoryMB.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var (file, share) = restore?.MemoryPath is { } image ? (image, "off") : (paths.SharedMemoryFile, "on");
        return $"memory-backend-file,id={MemoryBackendId},size={size}M,mem-path={Escape(file)},share={share}";
    }

    /// <summary>True when QEMU maps the snapshot's memory image (a state saved without the memory in it).</summary>
    public static bool MapsMemoryImage(RestoreSpec? restore) => restore?.MemoryPath is not null;

    /// <summary>
    /// The one NIC and what stands behind it. The NIC always talks to a datagram socket the host owns
    /// (the host relays its frames to wherever the VM is attached), so re-plugging needs no device
    /// change. NAT is user networking joined by a hub to a second host socket: always on the command
    /// line, so its state section is in every save and every restore finds it.
    /// </summary>
    private static string[] Network(VmConfiguration config, VmPaths paths)
    {
        var mac = config.MacAddress is null ? "" : ",mac=" + config.MacAddress;
        return new[]
        {
            "-netdev", $"dgram,id=net0,local.type=unix,local.path={Escape(paths.NicSocket)},remote.type=unix,remote.path={Escape(paths.NicHostSocket)}",
            // romfile= : no PXE option ROM (the guest boots from -kernel; the ROM only costs start time).
            "-device", $"virtio-net-pci,id=nic0,netdev=net0{mac},romfile=",
            "-netdev", "user,id=nat0",
            "-netdev", "hubport,id=natport0,hubid=0,netdev=nat0",
            "-netdev", $"dgram,id=natlink0,local.type=unix,local.path={Escape(paths.NatSocket)},remote.type=unix,remote.path={Escape(paths.NatHostSocket)}",
            "-netdev", "hubport,id=natport1,hubid=0,netdev=natlink0",
        };
    }

    /// <summary>QEMU option values separate with commas; a comma in a value is written twice.</summary>
    public static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
