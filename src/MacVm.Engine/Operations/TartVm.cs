using System.Text.Json;

namespace MacVm.Engine.Operations;

/// <summary>
/// A macOS VM made by Tart (cirruslabs/tart): a VM folder (~/.tart/vms/&lt;name&gt;) or an entry of its OCI
/// cache (~/.tart/cache/OCIs/&lt;registry&gt;/&lt;repository&gt;/&lt;tag or digest&gt;) — the same files either way:
/// disk.img (raw), nvram.bin (the auxiliary storage) and config.json, whose hardwareModel and ecid are the
/// base64 data representations of VZMacHardwareModel and VZMacMachineIdentifier.
/// </summary>
public sealed record TartVm(string DiskPath, string NvramPath, byte[] HardwareModel, byte[] MachineIdentifier, int? CpuCount, long? MemoryBytes)
{
    /// <summary>Reads and checks a Tart VM folder; throws <see cref="ArgumentException"/> naming what is wrong and how to fix it.</summary>
    public static TartVm Read(string path)
    {
        const string Parameter = "TartPath";
        var dir = Path.GetFullPath(path);
        if (!Directory.Exists(dir))
            throw new ArgumentException($"-TartPath '{path}' is not a folder. Give a Tart VM folder (~/.tart/vms/<name>) or an OCI cache entry (~/.tart/cache/OCIs/<registry>/<repository>/<tag>).", Parameter);
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath))
            throw new ArgumentException($"-TartPath '{path}' has no config.json: it is not a Tart VM folder. (`tart list` shows Tart's VMs; `tart pull <image>` fills its OCI cache.)", Parameter);
        JsonElement config;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(configPath));
            config = doc.RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"The Tart config '{configPath}' is not valid JSON: {ex.Message}", Parameter, ex);
        }
        if (config.ValueKind != JsonValueKind.Object)
            throw new ArgumentException($"The Tart config '{configPath}' is not a JSON object.", Parameter);
        var os = String(config, "os") ?? "darwin";
        if (os != "darwin")
            throw new ArgumentException($"The Tart VM '{path}' is a '{os}' guest. Only macOS Tart VMs can be imported (Tart's Linux VMs boot through EFI); import a Linux guest with -Kernel/-Initrd instead.", Parameter);
        var hardwareModel = Base64(config, "hardwareModel", configPath);
        var machineIdentifier = Base64(config, "ecid", configPath);
        var disk = Path.Combine(dir, "disk.img");
        var nvram = Path.Combine(dir, "nvram.bin");
        foreach (var (file, what) in new[] { (disk, "disk image"), (nvram, "NVRAM (auxiliary storage)") })
        {
            if (!File.Exists(file))
                throw new ArgumentException($"The Tart VM '{path}' has no {Path.GetFileName(file)} ({what}). A pulled image may still be downloading: run `tart pull` again.", Parameter);
        }
        int? cpus = config.TryGetProperty("cpuCount", out var c) && c.TryGetInt32(out var ci) ? ci : null;
        long? memory = config.TryGetProperty("memorySize", out var m) && m.TryGetInt64(out var mi) ? mi : null;
        return new TartVm(disk, nvram, hardwareModel, machineIdentifier, cpus, memory);
    }

    private static string? String(JsonElement config, string name) =>
        config.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static byte[] Base64(JsonElement config, string name, string configPath)
    {
        var text = String(config, name) ?? throw new ArgumentException(
            $"The Tart config '{configPath}' has no '{name}': it is not a macOS VM's config (Tart writes hardwareModel and ecid for macOS guests).", "TartPath");
        try
        {
            var bytes = Convert.FromBase64String(text);
            return bytes.Length > 0 ? bytes : throw new FormatException("empty");
        }
        catch (FormatException ex)
        {
            throw new ArgumentException($"The Tart config '{configPath}' has a '{name}' that is not base64 data.", "TartPath", ex);
        }
    }
}
