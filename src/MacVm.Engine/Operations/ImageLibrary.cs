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
    /// <summary>A Tart VM folder (~/.tart/vms/&lt;name&gt;) or an entry of Tart's OCI cache (~/.tart/cache/OCIs/…): a macOS image for the Apple driver.</summary>
    public string? TartPath { get; init; }
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
        if (request.TartPath is not null)
        {
            if (request.KernelPath is not null || request.InitrdPath is not null || request.DiskPath is not null)
                throw new ArgumentException("-TartPath brings its own disk: do not combine it with -Kernel, -Initrd or -Disk.", nameof(request.TartPath));
            var tart = TartVm.Read(request.TartPath);
            return await ImportFilesAsync(request, new List<ImageFile>
            {
                new("disk", tart.DiskPath, null, "disk.img"),
                new("auxiliary-storage", tart.NvramPath, null, "auxiliary-storage"),
                new("hardware-model", null, tart.HardwareModel, "hardware-model"),
                new("machine-identifier", null, tart.MachineIdentifier, "machine-identifier"),
            }, ImageKind.MacOS, "raw", reporter, ct).ConfigureAwait(false);
        }
        if (request.KernelPath is null && request.DiskPath is null)
            throw new ArgumentException("Give -Kernel (with -Initrd) for a Linux kernel image, or -Disk for a disk image.", nameof(request.KernelPath));
        if (request.KernelPath is null && request.InitrdPath is not null)
            throw new ArgumentException("-Initrd needs -Kernel.", nameof(request.InitrdPath));
        var files = new List<ImageFile>();
        if (request.KernelPath is { } k) files.Add(new("kernel", RequireFile(k, "Kernel"), null, "kernel"));
        if (request.InitrdPath is { } i) files.Add(new("initrd", RequireFile(i, "Initrd"), null, "initrd"));
        string? diskFormat = null;
        if (request.DiskPath is { } d)
        {
            var src = RequireFile(d, "Disk");
            diskFormat = IsQcow2(src) ? "qcow2" : "raw";
            files.Add(new("disk", src, null, "disk." + diskFormat));
        }
        return await ImportFilesAsync(request, files, request.KernelPath is null ? ImageKind.Disk : ImageKind.KernelInitrd, diskFormat, reporter, ct).ConfigureAwait(false);
    }

    /// <summary>One file of an image: copied from <paramref name="Source"/>, or written from <paramref name="Content"/>.</summary>
    private sealed record ImageFile(string Role, string? Source, byte[]? Content, string Target)
    {
        public long Length => Content?.Length ?? new FileInfo(Source!).Length;
    }

    private async Task<MacVmImage> ImportFilesAsync(ImportImageRequest request, List<ImageFile> files, ImageKind kind, string? diskFormat,
        IOperationReporter reporter, CancellationToken ct)
    {
        Store.EnsureWritable();
        var final = Store.ImageDirectory(request.Name);
        if (Directory.Exists(final)) throw NameTaken(request.Name);
        var staging = Path.Combine(Store.ImagesDirectory, $".import-{request.Name}-{Guid.NewGuid():N}");
        VmStore.CreatePrivateDirectory(staging);
        var activity = Interlocked.Increment(ref s_activityIds);
        try
        {
            long total = files.Sum(f => f.Length), done = 0;
            var digestLines = new StringBuilder();
            foreach (var file in files)
            {
                string hash;
                if (file.Content is { } content)
                {
                    await File.WriteAllBytesAsync(Path.Combine(staging, file.Target), content, ct).ConfigureAwait(false);
                    hash = Convert.ToHexString(SHA256.HashData(content)).ToLowerInvariant();
                }
                else
                {
                    hash = await CopyAndHashAsync(file.Source!, Path.Combine(staging, file.Target), copied =>
                    {
                        var pct = total == 0 ? 100 : (int)((done + copied) * 100 / total);
                        reporter.Progress(new OperationProgress(activity, $"Importing image {request.Name}", $"Copying {Path.GetFileName(file.Source)}", pct));
                    }, ct).ConfigureAwait(false);
                }
                done += file.Length;
                digestLines.Append(file.Role).Append(':').Append(hash).Append('\n');
            }
            string? Has(string role) => files.FirstOrDefault(f => f.Role == role)?.Target;
            var image = new MacVmImage
            {
                Name = request.Name,
                Kind = kind,
                Digest = "sha256:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(digestLines.ToString()))).ToLowerInvariant(),
                Kernel = Has("kernel"),
                Initrd = Has("initrd"),
                Disk = Has("disk"),
                DiskFormat = diskFormat,
                HardwareModel = Has("hardware-model"),
                MachineIdentifier = Has("machine-identifier"),
                AuxiliaryStorage = Has("auxiliary-storage"),
                Source = request.TartPath is null ? null : "tart:" + Path.GetFullPath(request.TartPath),
                KernelCommandLine = request.KernelCommandLine,
                GuestAgent = request.GuestAgent,
                ReadyMarker = request.ReadyMarker,
                SizeBytes = total,
            };
            AtomicFile.WriteAllText(Path.Combine(staging, "image.json"), ModelJson.Serialize(image));
            // The image's files back every VM's overlay: make them read-only so nothing writes them by mistake.
            foreach (var file in files)
                File.SetUnixFileMode(Path.Combine(staging, file.Target), UnixFileMode.UserRead | UnixFileMode.GroupRead);
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
            // Runs of zeros become holes: a 50 GB macOS disk that is mostly empty stays small.
            if (buffer.AsSpan(0, n).IndexOfAnyExcept((byte)0) < 0) output.Seek(n, SeekOrigin.Current);
            else await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            copied += n;
            if (DateTime.UtcNow - lastReport > TimeSpan.FromMilliseconds(250))
            {
                lastReport = DateTime.UtcNow;
                progress(copied);
            }
        }
        output.SetLength(copied); // a file that ends in a hole still has its full length
        output.Flush(flushToDisk: true);
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }
}
