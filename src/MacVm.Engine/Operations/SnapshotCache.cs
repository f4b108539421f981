using MacVm.Engine.Store;

namespace MacVm.Engine.Operations;

/// <summary>
/// The pipeline cache of snapshots, as test harnesses use it: one snapshot per (image digest, code
/// version) key, prepared exactly once across processes. Preparation itself (booting, running the
/// caller's script, saving) is driven by the caller; this class owns the key, the lock and pruning.
/// </summary>
public sealed class SnapshotCache
{
    /// <summary>Works on <paramref name="store"/>.</summary>
    public SnapshotCache(VmStore store) => Store = store;

    /// <summary>The store.</summary>
    public VmStore Store { get; }

    /// <summary>"snap-&lt;first 12 hex of the image digest&gt;-v&lt;code version&gt;": bumping either makes a new key.</summary>
    public static string Key(MacVmImage image, int codeVersion) => $"snap-{image.ShortDigest}-v{codeVersion}";

    /// <summary>The name of the VM a preparation of <paramref name="key"/> uses (fixed, so a later preparer finds what a killed one left).</summary>
    public static string PreparationVmName(string key) => "prep-" + key;

    /// <summary>
    /// Takes the key's lock, waiting for another process that holds it. The lock is an open file with
    /// an exclusive flock, so a preparer that dies (even by kill -9) releases it.
    /// </summary>
    public async Task<IDisposable> LockAsync(string key, IOperationReporter reporter, CancellationToken ct)
    {
        Store.EnsureWritable();
        var dir = Path.Combine(Store.SnapshotsDirectory, ".locks");
        VmStore.CreatePrivateDirectory(dir);
        var path = Path.Combine(dir, key + ".lock");
        var told = false;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                if (!told)
                {
                    reporter.Verbose($"Another process is preparing snapshot '{key}'; waiting for it.");
                    told = true;
                }
                await Task.Delay(50, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Older keys of the same image (other code versions), which -Prune removes.</summary>
    public IReadOnlyList<string> OlderKeys(MacVmImage image, string keep) =>
        Store.SnapshotNames().Where(n => n.StartsWith($"snap-{image.ShortDigest}-v", StringComparison.Ordinal) && n != keep).ToList();
}
