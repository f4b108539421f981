using System.Text.Json;
using MacVm.Engine.Platform;
using MacVm.Engine.Store;

namespace MacVm.Engine.Operations;

/// <summary>
/// Checksums of a snapshot's files, and the proof that they were checked. Hashing a snapshot's files
/// costs tens of milliseconds, a large part of a restore, so a successful check leaves a stamp beside the files:
/// each file's inode, size and change time with the checksum it matched. While the file system
/// still reports that same version, the file is the one that matched; any write, truncation or
/// replacement moves its change time (the kernel sets it; no user can set it back) and the next
/// restore hashes the file again. Where no change time can be read (not Linux), every restore hashes.
/// </summary>
public static class SnapshotIntegrity
{
    /// <summary>The stamp's file name inside a snapshot folder.</summary>
    public const string StampFileName = ".verified.json";

    /// <summary>Names, sizes and checksums <paramref name="path"/> as a manifest entry.</summary>
    public static async Task<SnapshotFile> DescribeAsync(string path, string role, CancellationToken ct) =>
        new(Path.GetFileName(path), role, new FileInfo(path).Length, await FileChecksum.ComputeAsync(path, ct).ConfigureAwait(false));

    /// <summary>
    /// Checks every file of <paramref name="snapshot"/> against its recorded size and checksum, skipping
    /// files the stamp proves unchanged since they matched; returns the files that do not match, in words.
    /// </summary>
    public static async Task<IReadOnlyList<(SnapshotFile File, string Problem)>> VerifyAsync(MacVmSnapshot snapshot, CancellationToken ct)
    {
        var folder = snapshot.Path!;
        var stamp = ReadStamp(folder);
        var problems = new List<(SnapshotFile, string)>();
        var checkedNow = false;
        foreach (var file in snapshot.Files)
        {
            var path = Path.Combine(folder, file.Name);
            if (!File.Exists(path)) { problems.Add((file, $"'{path}' is missing")); continue; }
            if (stamp.TryGetValue(file.Name, out var seen) && seen.Checksum == file.Checksum && Posix.TryGetFileVersion(path) == seen.Version) continue;
            var size = new FileInfo(path).Length;
            if (!FileChecksum.IsKnown(file.Checksum ?? "")) problems.Add((file, $"'{path}' has a checksum of a kind this version of MacVm does not know ('{file.Checksum}'), so it cannot be checked"));
            else if (size != file.SizeBytes) problems.Add((file, $"'{path}' has {size} bytes, {file.SizeBytes} were saved"));
            else if (await FileChecksum.ComputeAsync(path, ct, like: file.Checksum).ConfigureAwait(false) != file.Checksum) problems.Add((file, $"'{path}' does not match its checksum"));
            else checkedNow = true;
        }
        if (problems.Count == 0 && checkedNow) WriteStamp(folder, snapshot.Files);
        return problems;
    }

    /// <summary>Records that the files in <paramref name="folder"/> match <paramref name="files"/> as they are now.</summary>
    public static void WriteStamp(string folder, IEnumerable<SnapshotFile> files)
    {
        var entries = new Dictionary<string, StampEntry>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            if (Posix.TryGetFileVersion(Path.Combine(folder, file.Name)) is not { } version) return;
            entries[file.Name] = new StampEntry(file.Checksum, version);
        }
        try
        {
            AtomicFile.WriteAllText(Path.Combine(folder, StampFileName), JsonSerializer.Serialize(entries, StampJsonContext.Default.DictionaryStringStampEntry));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Only an optimisation: a read-only store hashes on every restore.
        }
    }

    private static Dictionary<string, StampEntry> ReadStamp(string folder)
    {
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(Path.Combine(folder, StampFileName)), StampJsonContext.Default.DictionaryStringStampEntry) ?? new();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return new();
        }
    }

    /// <summary>What the stamp says of one file.</summary>
    internal sealed record StampEntry(string Checksum, FileVersion Version);
}

/// <summary>The stamp's JSON, generated at build time.</summary>
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, SnapshotIntegrity.StampEntry>))]
internal sealed partial class StampJsonContext : System.Text.Json.Serialization.JsonSerializerContext
{
}
