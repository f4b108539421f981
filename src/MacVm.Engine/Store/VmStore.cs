namespace MacVm.Engine.Store;

/// <summary>
/// The on-disk store: images/&lt;name&gt;/ and vms/&lt;name&gt;/ under one root. Everything the module
/// knows lives here as files, so a new pwsh session (or another process) sees the same VMs.
/// </summary>
public sealed class VmStore
{
    /// <summary>The environment variable that overrides the store's root.</summary>
    public const string HomeVariable = "MACVM_HOME";

    /// <summary>Opens the store at <paramref name="root"/> (not created until first written).</summary>
    public VmStore(string root)
    {
        Root = Path.GetFullPath(root);
    }

    /// <summary>The store for this user: $MACVM_HOME, else the OS's per-user data folder.</summary>
    public static VmStore Default() => new(DefaultRoot());

    /// <summary>$MACVM_HOME, else $XDG_DATA_HOME/macvm or ~/.local/share/macvm on Linux, ~/Library/Application Support/MacVm on macOS.</summary>
    public static string DefaultRoot()
    {
        var home = Environment.GetEnvironmentVariable(HomeVariable);
        if (!string.IsNullOrWhiteSpace(home)) return home;
        var user = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (OperatingSystem.IsMacOS()) return Path.Combine(user, "Library", "Application Support", "MacVm");
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        return Path.Combine(string.IsNullOrWhiteSpace(xdg) ? Path.Combine(user, ".local", "share") : xdg, "macvm");
    }

    /// <summary>The store's root folder.</summary>
    public string Root { get; }

    /// <summary>images/.</summary>
    public string ImagesDirectory => Path.Combine(Root, "images");

    /// <summary>vms/.</summary>
    public string VmsDirectory => Path.Combine(Root, "vms");

    /// <summary>snapshots/.</summary>
    public string SnapshotsDirectory => Path.Combine(Root, "snapshots");

    /// <summary>The folder of the snapshot named <paramref name="name"/>.</summary>
    public string SnapshotDirectory(string name) => Path.Combine(SnapshotsDirectory, name);

    /// <summary>Names of the snapshots in the store, sorted.</summary>
    public IReadOnlyList<string> SnapshotNames() => ChildNames(SnapshotsDirectory, "snapshot.json");

    /// <summary>Reads a snapshot, or null when there is no such snapshot.</summary>
    public MacVmSnapshot? ReadSnapshot(string name)
    {
        var dir = SnapshotDirectory(name);
        var p = Path.Combine(dir, "snapshot.json");
        if (!File.Exists(p)) return null;
        return ModelJson.Deserialize<MacVmSnapshot>(File.ReadAllText(p), $"The snapshot manifest '{p}'") with { Path = dir };
    }

    /// <summary>Writes a VM's configuration atomically.</summary>
    public static void WriteVm(VmPaths paths, VmConfiguration config) => AtomicFile.WriteAllText(paths.Manifest, ModelJson.Serialize(config));

    /// <summary>The folder of the image named <paramref name="name"/>.</summary>
    public string ImageDirectory(string name) => Path.Combine(ImagesDirectory, name);

    /// <summary>The paths of the VM named <paramref name="name"/>.</summary>
    public VmPaths Vm(string name) => new(Path.Combine(VmsDirectory, name));

    /// <summary>
    /// Creates the store's folders (0700: VM folders hold sockets that control the VMs) and proves the
    /// store is writable, with an error that says what to do when it is not.
    /// </summary>
    public void EnsureWritable()
    {
        try
        {
            foreach (var dir in new[] { Root, ImagesDirectory, VmsDirectory, SnapshotsDirectory })
                CreatePrivateDirectory(dir);
            var probe = Path.Combine(Root, $".write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new StoreNotWritableException(
                $"The MacVm store '{Root}' is not writable ({ex.Message}). Make it writable, or set $env:{HomeVariable} to a folder you can write.", ex);
        }
    }

    /// <summary>Creates a folder readable only by its owner (no-op if it exists).</summary>
    public static void CreatePrivateDirectory(string dir)
    {
        if (OperatingSystem.IsWindows())
            Directory.CreateDirectory(dir);
        else
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>Names of the VMs in the store (folders with a manifest), sorted.</summary>
    public IReadOnlyList<string> VmNames() => ChildNames(VmsDirectory, "vm.json");

    /// <summary>Names of the images in the store, sorted.</summary>
    public IReadOnlyList<string> ImageNames() => ChildNames(ImagesDirectory, "image.json");

    private static IReadOnlyList<string> ChildNames(string dir, string marker)
    {
        if (!Directory.Exists(dir)) return Array.Empty<string>();
        return Directory.EnumerateDirectories(dir)
            .Where(d => File.Exists(Path.Combine(d, marker)))
            .Select(d => Path.GetFileName(d)!)
            .Where(n => !n.StartsWith('.'))
            .OrderBy(n => n, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Reads a VM's configuration, or null when there is no such VM.</summary>
    public VmConfiguration? ReadVm(string name)
    {
        var p = Vm(name).Manifest;
        if (!File.Exists(p)) return null;
        return ModelJson.Deserialize<VmConfiguration>(File.ReadAllText(p), $"The manifest '{p}'");
    }

    /// <summary>Reads an image, or null when there is no such image.</summary>
    public MacVmImage? ReadImage(string name)
    {
        var dir = ImageDirectory(name);
        var p = Path.Combine(dir, "image.json");
        if (!File.Exists(p)) return null;
        return ModelJson.Deserialize<MacVmImage>(File.ReadAllText(p), $"The image manifest '{p}'") with { Path = dir };
    }

    /// <summary>Reads the last status the host wrote, or null when it never wrote one.</summary>
    public static VmStatus? ReadStatus(VmPaths paths)
    {
        try
        {
            return File.Exists(paths.Status)
                ? ModelJson.Deserialize<VmStatus>(File.ReadAllText(paths.Status), $"The status file '{paths.Status}'")
                : null;
        }
        catch (InvalidDataException) { return null; }
        catch (IOException) { return null; }
    }

    /// <summary>Writes a status atomically.</summary>
    public static void WriteStatus(VmPaths paths, VmStatus status) => AtomicFile.WriteAllText(paths.Status, ModelJson.Serialize(status));

    /// <summary>Reads the host pid file, or null.</summary>
    public static int? ReadHostPid(VmPaths paths)
    {
        try { return int.TryParse(File.ReadAllText(paths.HostPid).Trim(), out var pid) ? pid : null; }
        catch (IOException) { return null; }
    }
}

/// <summary>The store's folder cannot be written.</summary>
public sealed class StoreNotWritableException : IOException
{
    /// <summary>Makes the exception.</summary>
    public StoreNotWritableException(string message, Exception inner) : base(message, inner) { }
}
