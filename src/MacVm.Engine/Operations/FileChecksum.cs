using System.IO.Hashing;
using System.Security.Cryptography;

namespace MacVm.Engine.Operations;

/// <summary>
/// The checksums in a snapshot's manifest: "xxh128:" + hex, the value <c>xxh128sum</c> prints. XXH128
/// catches damage (truncation, flipped or replaced bytes) as surely as SHA-256 and hashes a guest's memory
/// image at memory speed; it is no defence against someone who can write the store, and none is needed:
/// the store is the user's own 0700 folder. Manifests written before 0.2 carry "sha256:" values, still verified.
/// </summary>
public static class FileChecksum
{
    /// <summary>The prefix of the checksums written now.</summary>
    public const string XxHash128Prefix = "xxh128:";

    private const string Sha256Prefix = "sha256:";

    /// <summary>Formats a finished XXH128 as a manifest checksum.</summary>
    public static string Format(XxHash128 hash) => XxHash128Prefix + Convert.ToHexString(hash.GetCurrentHash()).ToLowerInvariant();

    /// <summary>Computes the checksum of <paramref name="path"/> with the algorithm <paramref name="like"/> names (default XXH128).</summary>
    public static async Task<string> ComputeAsync(string path, CancellationToken ct, string? like = null)
    {
        await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan | FileOptions.Asynchronous);
        if (like is not null && like.StartsWith(Sha256Prefix, StringComparison.Ordinal))
            return Sha256Prefix + Convert.ToHexString(await SHA256.HashDataAsync(f, ct).ConfigureAwait(false)).ToLowerInvariant();
        var hash = new XxHash128();
        var buffer = new byte[1 << 20];
        int n;
        while ((n = await f.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0) hash.Append(buffer.AsSpan(0, n));
        return Format(hash);
    }
}
