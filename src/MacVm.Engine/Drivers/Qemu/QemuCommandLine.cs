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

    /// <summary>The machine type for x86_64 guests: pinned, so saved states load into later QEMUs.</summary>
    public const string X86MachineType = "pc-i440fx-7.2";

    /// <summary>The arguments after the QEMU executable.</summary>
    /// <param name="config">The VM.</param>
    /// <param name="paths">Where its sockets and disk are.</param>
    /// <param name="accelerator">The resolved accelerator: kvm, tcg or hvf.</param>
    /// <param name="incoming">Wait for a machine state (migrate-incoming) instead of booting.</param>
    public static IReadOnlyList<string> Build(VmConfiguration config, VmPaths paths, string accelerator, bool incoming = false)
    {
        var boot = config.Boot;
        var a = new List<string>
        {
            "-name", $"macvm-{config.Name},debug-threads=on",
            "-machine", $"{X86MachineType},accel={accelerator}",
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
            "-device", "VGA,id=vga0",
        });
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
        if (incoming) a.AddRange(new[] { "-incoming", "defer" });
        return a;
    }

    /// <summary>QEMU option values separate with commas; a comma in a value is written twice.</summary>
    public static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
