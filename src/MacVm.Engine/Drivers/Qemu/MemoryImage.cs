using System.IO.Hashing;
using System.IO.MemoryMappedFiles;
using MacVm.Engine.Operations;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// Writes a paused guest's memory (the file QEMU shares with the host) as a snapshot's flat memory image:
/// byte for byte the guest's RAM, sparse where a page is all zeros, hashed in the same pass. Restores map
/// the image instead of reading the memory out of a migration stream.
/// </summary>
internal static class MemoryImage
{
    /// <summary>The image's file name in a snapshot.</summary>
    public const string FileName = "memory.bin";

    private const int Page = 4096;
    private const int HashChunk = 1 << 20;
    private const long MaxWrite = 4L << 20;

    /// <summary>
    /// Copies <paramref name="memory"/> (<paramref name="size"/> bytes) to the new file <paramref name="target"/>.
    /// Only non-zero pages are written (a guest's free memory costs no disk); the checksum covers every byte.
    /// The hash runs on a second thread beside the copy: the guest is paused while this runs.
    /// </summary>
    public static unsafe SnapshotFile Write(FileStream memory, long size, string target, CancellationToken ct)
    {
        using var map = MemoryMappedFile.CreateFromFile(memory, null, size, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        using var view = map.CreateViewAccessor(0, size, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        try
        {
            var start = (nint)(pointer + view.PointerOffset);
            var hash = new XxHash128();
            var hashing = Task.Run(() =>
            {
                for (long offset = 0; offset < size; offset += HashChunk)
                {
                    ct.ThrowIfCancellationRequested();
                    hash.Append(new ReadOnlySpan<byte>((byte*)start + offset, (int)Math.Min(HashChunk, size - offset)));
                }
            }, ct);
            try
            {
                using var output = File.OpenHandle(target, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                RandomAccess.SetLength(output, size);
                long run = -1;
                for (long offset = 0; ; offset = Math.Min(offset + Page, size))
                {
                    var zero = offset == size || new ReadOnlySpan<byte>((byte*)start + offset, (int)Math.Min(Page, size - offset)).IndexOfAnyExcept((byte)0) < 0;
                    if (!zero && run < 0) run = offset;
                    if (run >= 0 && (zero || offset - run >= MaxWrite))
                    {
                        ct.ThrowIfCancellationRequested();
                        RandomAccess.Write(output, new ReadOnlySpan<byte>((byte*)start + run, (int)(offset - run)), run);
                        run = zero ? -1 : offset;
                    }
                    if (offset == size) break;
                }
            }
            finally
            {
                // The mapping must outlive the hashing thread, whatever happened to the copy.
                try { hashing.Wait(CancellationToken.None); }
                catch (AggregateException) when (ct.IsCancellationRequested) { }
            }
            ct.ThrowIfCancellationRequested();
            return new SnapshotFile(Path.GetFileName(target), SnapshotFile.MemoryRole, size, FileChecksum.Format(hash));
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }
}
