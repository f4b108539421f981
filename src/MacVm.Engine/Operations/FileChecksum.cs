using System.IO.Hashing;
using System.Security.Cryptography;

namespace MacVm.Engine.Operations;

/// <summary>
/// The checksums in a snapshot's manifest: "crc64:" + 16 hex digits, the CRC-64/ECMA-182 of the content.
/// A CRC is what storage uses to catch damage (truncation, flipped or replaced bytes), and it is no defence
/// against someone who can write the store; none is needed: the store is the user's own 0700 folder. It is
/// chosen for speed where it matters: System.IO.Hashing's CRC-64 runs at memory speed (about 10 GB/s here)
/// from a host's first call, while its XXH128 runs unoptimised code at about 1 GB/s until tiered
/// compilation catches up, seconds later, and SHA-256 manages 2 GB/s. A save hashes the guest's whole
/// memory while the guest is paused. Manifests written before 0.2 carry "sha256:" values, still verified.
/// </summary>
public static class FileChecksum
{
    /// <summary>The prefix of the checksums written now.</summary>
    public const string Crc64Prefix = "crc64:";

    private const string Sha256Prefix = "sha256:";

    /// <summary>Formats a finished CRC-64 as a manifest checksum.</summary>
    public static string Format(Crc64 crc) => Crc64Prefix + crc.GetCurrentHashAsUInt64().ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>True when this version can compute checksums like <paramref name="checksum"/> (CRC-64, or SHA-256 of old manifests).</summary>
    public static bool IsKnown(string checksum) =>
        checksum.StartsWith(Crc64Prefix, StringComparison.Ordinal) || checksum.StartsWith(Sha256Prefix, StringComparison.Ordinal);

    /// <summary>Computes the checksum of <paramref name="path"/> with the algorithm <paramref name="like"/> names (default CRC-64).</summary>
    public static async Task<string> ComputeAsync(string path, CancellationToken ct, string? like = null)
    {
        await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan | FileOptions.Asynchronous);
        if (like is not null && like.StartsWith(Sha256Prefix, StringComparison.Ordinal))
            return Sha256Prefix + Convert.ToHexString(await SHA256.HashDataAsync(f, ct).ConfigureAwait(false)).ToLowerInvariant();
        // Our own 1 MiB reads: Crc64.AppendAsync(Stream) reads 4 KiB at a time, 65,536 reads for a 256 MB image.
        var crc = new Crc64();
        var buffer = new byte[1 << 20];
        int n;
        while ((n = await f.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0) crc.Append(buffer.AsSpan(0, n));
        return Format(crc);
    }
}
