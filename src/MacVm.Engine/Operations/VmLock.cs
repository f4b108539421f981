using MacVm.Engine.Store;

namespace MacVm.Engine.Operations;

/// <summary>
/// An exclusive lock on one VM across threads and processes: an open lock file with FileShare.None
/// (on Unix .NET backs this with flock, which the kernel drops when the holder dies).
/// </summary>
public sealed class VmLock : IDisposable
{
    private readonly FileStream _file;

    private VmLock(FileStream file) => _file = file;

    /// <summary>Waits for the lock (up to 60 s).</summary>
    public static async Task<VmLock> AcquireAsync(VmPaths paths, CancellationToken ct)
    {
        var path = Path.Combine(paths.Directory, ".lock");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                return new VmLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (DateTime.UtcNow < deadline && Directory.Exists(paths.Directory))
            {
                await Task.Delay(25, ct).ConfigureAwait(false);
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _file.Dispose();
}
