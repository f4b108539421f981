using System.Security.Cryptography;
using System.Text;
using MacVm.Engine.Store;

namespace MacVm.Engine.Operations;

/// <summary>What Import-MacVmImage asks for.</summary>
public sealed record ImportImageRequest
{
    /// <summary>The image's name.</summary>
    public required string Name { get; init; }
    /// <summary>A Linux kernel (with <see cref="InitrdPath"/>).</summary>
    public string? KernelPath { get; init; }
    /// <summary>An initramfs.</summary>
    public string? InitrdPath { get; init; }
    /// <summary>A disk image (qcow2 or raw): the boot disk, or the data disk of a kernel image.</summary>
    public string? DiskPath { get; init; }
    /// <summary>The kernel command line.</summary>
    public string? KernelCommandLine { get; init; }
    /// <summary>Whether the guest runs the MacVm guest agent.</summary>
    public bool GuestAgent { get; init; }
    /// <summary>The serial-console line that says the guest is up.</summary>
    public string? ReadyMarker { get; init; }
}

/// <summary>Images in the store: import (copy in, with a content digest), list, remove.</summary>
public sealed class ImageLibrary
{
    private static int s_activityIds = 1_000_000;

    /// <summary>Works on <paramref name="store"/>.</summary>
    public ImageLibrary(VmStore store) => Store = store;

    /// <summary>The store.</summary>
    public VmStore Store { get; }

    /// <summary>Image names matching the patterns, and the literal names that matched nothing.</summary>
    public (IReadOnlyList<string> Names, IReadOnlyList<string> Missing) Resolve(IEnumerable<string>? patterns) =>
        WildcardNames.Resolve(Store.ImageNames(), patterns);

    /// <summary>Reads one image or throws ImageNotFound.</summary>
    public MacVmImage Get(string name) =>
        (NameRules.Check("image", name) is null ? Store.ReadImage(name) : null) ?? throw MacVmException.ImageNotFound(name, Store.Root);

    /// <summary>
    /// Copies the files into images/&lt;name&gt;/ and records their digest. The copy is built in a hidden
    /// folder and renamed into place, so a failed or cancelled import leaves nothing behind.
    /// </summary>
    public async Task<MacVmImage> ImportAsync(ImportImageRequest request, IOperationReporter reporter, CancellationToken ct)
    {
        NameRules.Validate("image", request.Name, nameof(request.Name));
        if (request.KernelPath is null && request.DiskPath is null)
            throw new ArgumentException("Give -Kernel (with -Initrd) for a Linux kernel image, or -Disk for a disk image.", nameof(request.KernelPath));
        if (request.KernelPath is null && request.InitrdPath is not null)
            throw new ArgumentException("-Initrd needs -Kernel.", nameof(request.InitrdPath));
        var files = new List<(string Role, string Source, string Target)>();
        if (request.KernelPath is { } k) files.Add(("kernel", RequireFile(k, "Kernel"), "kernel"));
        if (request.InitrdPath is { } i) files.Add(("initrd", RequireFile(i, "Initrd"), "initrd"));
        string? diskFormat = null;
        if (request.DiskPath is { } d)
        {
            var src = RequireFile(d, "Disk");
            diskFormat = IsQcow2(src) ? "qcow2" : "raw";
            files.Add(("disk", src, "disk." + diskFormat));
        }

        Store.EnsureWritable();
        var final = Store.ImageDirectory(request.Name);
        if (Directory.Exists(final)) throw NameTaken(request.Name);
        var staging = Path.Combine(Store.ImagesDirectory, $".import-{request.Name}-{Guid.NewGuid():N}");
        VmStore.CreatePrivateDirectory(staging);
        var activity = Interlocked.Increment(ref s_activityIds);
        try
        {
            long total = files.Sum(f => new FileInfo(f.Source).Length), done = 0;
            var digestLines = new StringBuilder();
            foreach (var (role, source, target) in files)
            {
                var hash = await CopyAndHashAsync(source, Path.Combine(staging, target), copied =>
                {
                    var pct = total == 0 ? 100 : (int)((done + copied) * 100 / total);
                    reporter.Progress(new OperationProgress(activity, $"Importing image {request.Name}", $"Copying {Path.GetFileName(source)}", pct));
                }, ct).ConfigureAwait(false);
                done += new FileInfo(source).Length;
                digestLines.Append(role).Append(':').Append(hash).Append('\n');
            }
            var image = new MacVmImage
            {
                Name = request.Name,
                Kind = request.KernelPath is null ? ImageKind.Disk : ImageKind.KernelInitrd,
                Digest = "sha256:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(digestLines.ToString()))).ToLowerInvariant(),
                Kernel = request.KernelPath is null ? null : "kernel",
                Initrd = request.InitrdPath is null ? null : "initrd",
                Disk = diskFormat is null ? null : "disk." + diskFormat,
                DiskFormat = diskFormat,
                KernelCommandLine = request.KernelCommandLine,
                GuestAgent = request.GuestAgent,
                ReadyMarker = request.ReadyMarker,
                SizeBytes = total,
            };
            AtomicFile.WriteAllText(Path.Combine(staging, "image.json"), ModelJson.Serialize(image));
            // The image's files back every VM's overlay: make them read-only so nothing writes them by mistake.
            foreach (var (_, _, target) in files)
                File.SetUnixFileMode(Path.Combine(staging, target), UnixFileMode.UserRead | UnixFileMode.GroupRead);
            try
            {
                Directory.Move(staging, final);
            }
            catch (IOException) when (Directory.Exists(final))
            {
                throw NameTaken(request.Name);
            }
            reporter.Progress(new OperationProgress(activity, $"Importing image {request.Name}", "Done", 100, Completed: true));
            return image with { Path = final };
        }
        catch
        {
            VmManager.TryDeleteDirectory(staging);
            throw;
        }
    }

    /// <summary>Removes an image; refused while any VM is made from it (their disks are overlays on it).</summary>
    public void Remove(string name)
    {
        var image = Get(name);
        var users = Store.VmNames().Where(vm =>
        {
            try { return Store.ReadVm(vm)?.Image == name; }
            catch (InvalidDataException) { return false; }
        }).ToList();
        users.AddRange(Store.SnapshotNames().Where(sn =>
        {
            try { return Store.ReadSnapshot(sn)?.Image == name; }
            catch (InvalidDataException) { return false; }
        }).Select(sn => $"snapshot {sn}"));
        if (users.Count > 0)
            throw new MacVmException(MacVmErrorKind.InvalidState, "ImageInUse",
                $"Image '{name}' is in use by VM(s) {string.Join(", ", users.Select(u => $"'{u}'"))}, whose disks are built on it. Remove those VMs first (Remove-MacVm).", name);
        var doomed = Path.Combine(Store.ImagesDirectory, $".removed-{name}-{Guid.NewGuid():N}");
        Directory.Move(image.Path!, doomed);
        VmManager.TryDeleteDirectory(doomed);
    }

    private static MacVmException NameTaken(string name) =>
        new(MacVmErrorKind.AlreadyExists, "NameTaken", $"An image named '{name}' already exists. Choose another name, or remove it first with Remove-MacVmImage -Name {name}.", name);

    private static string RequireFile(string path, string parameter)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new ArgumentException($"-{parameter} '{path}' is a folder; give the path of a file.", parameter);
        if (!File.Exists(full)) throw new ArgumentException($"-{parameter} '{path}' does not exist. Give the path of an existing file.", parameter);
        return full;
    }

    private static bool IsQcow2(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using var f = File.OpenRead(path);
        return f.Read(magic) == 4 && magic[0] == (byte)'Q' && magic[1] == (byte)'F' && magic[2] == (byte)'I' && magic[3] == 0xfb;
    }

    private static async Task<string> CopyAndHashAsync(string source, string target, Action<long> progress, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        await using var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        await using var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1);
        long copied = 0;
        var lastReport = DateTime.MinValue;
        int n;
        while ((n = await input.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            copied += n;
            if (DateTime.UtcNow - lastReport > TimeSpan.FromMilliseconds(250))
            {
                lastReport = DateTime.UtcNow;
                progress(copied);
            }
        }
        output.Flush(flushToDisk: true);
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}
