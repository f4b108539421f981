namespace MacVm.Engine.Store;

/// <summary>Writes files so a reader sees either the old or the new content, never a torn one.</summary>
public static class AtomicFile
{
    /// <summary>Writes text to a temporary file beside <paramref name="path"/>, flushes it to disk and renames it into place.</summary>
    public static void WriteAllText(string path, string text)
    {
        var tmp = $"{path}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            using (var w = new StreamWriter(fs))
            {
                w.Write(text);
                w.Flush();
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>
    /// Writes bytes to a temporary file beside <paramref name="path"/>, flushes it and renames it into place
    /// (created with <paramref name="mode"/> when given): a failure leaves no partial file.
    /// </summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes, UnixFileMode? mode = null)
    {
        var tmp = $"{path}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
            if (mode is { } m) options.UnixCreateMode = m;
            using (var fs = new FileStream(tmp, options))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
    }

    /// <summary>Deletes a file, ignoring a missing one.</summary>
    public static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
