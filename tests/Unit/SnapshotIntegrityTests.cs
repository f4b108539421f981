using MacVm.Engine.Operations;
using Xunit;

namespace MacVm.Tests.Unit;

public sealed class SnapshotIntegrityTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("macvm-unit-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private async Task<MacVmSnapshot> SaveAsync(string content)
    {
        File.WriteAllText(Path.Combine(_folder, "state.bin"), content);
        var file = await SnapshotIntegrity.DescribeAsync(Path.Combine(_folder, "state.bin"), "state", CancellationToken.None);
        return new MacVmSnapshot
        {
            Name = "s",
            SourceVm = "vm",
            Image = "img",
            ImageDigest = "d",
            Configuration = new VmConfiguration { Name = "s", Image = "img", ImageDigest = "d", Boot = new BootSpec { KernelPath = "k", DiskFile = "disk.qcow2" } },
            Files = [file],
            Path = _folder,
        };
    }

    [Fact]
    public async Task AFileAlteredAfterItWasVerifiedIsCaughtDespiteTheStamp()
    {
        var snapshot = await SaveAsync("saved state");
        Assert.Empty(await SnapshotIntegrity.VerifyAsync(snapshot, CancellationToken.None));
        Assert.True(File.Exists(Path.Combine(_folder, SnapshotIntegrity.StampFileName)));

        // Same length, different bytes: only the checksum can tell.
        File.WriteAllText(Path.Combine(_folder, "state.bin"), "saved STATE");
        var problem = Assert.Single(await SnapshotIntegrity.VerifyAsync(snapshot, CancellationToken.None));
        Assert.Contains("does not match its checksum", problem.Problem);
    }

    [Fact]
    public async Task ATruncatedFileIsCaughtDespiteTheStamp()
    {
        var snapshot = await SaveAsync("saved state");
        SnapshotIntegrity.WriteStamp(_folder, snapshot.Files);
        using (var f = File.OpenWrite(Path.Combine(_folder, "state.bin"))) f.SetLength(3);
        var problem = Assert.Single(await SnapshotIntegrity.VerifyAsync(snapshot, CancellationToken.None));
        Assert.Contains("has 3 bytes, 11 were saved", problem.Problem);
    }

    [Fact]
    public async Task AnUnchangedFileWithAStampIsNotReadAgain()
    {
        var snapshot = await SaveAsync("saved state");
        SnapshotIntegrity.WriteStamp(_folder, snapshot.Files);
        // A stamp that vouches for a checksum the bytes do not have: trusted only because the file's
        // version (inode, size, change time) is the one stamped, which shows the file was not hashed.
        var forged = snapshot with { Files = [snapshot.Files[0] with { Checksum = "crc64:" + new string('0', 16) }] };
        SnapshotIntegrity.WriteStamp(_folder, forged.Files);
        Assert.Empty(await SnapshotIntegrity.VerifyAsync(forged, CancellationToken.None));
        // The stamp is tied to the checksum in the manifest: another checksum is hashed and refused.
        Assert.Single(await SnapshotIntegrity.VerifyAsync(snapshot with { Files = [snapshot.Files[0] with { Checksum = "crc64:" + new string('1', 16) }] }, CancellationToken.None));
    }

    [Fact]
    public async Task ChecksumsAreCrc64Ecma182()
    {
        // The catalogued check value of CRC-64/ECMA-182 (poly 0x42F0E1EBA9EA3693, init 0, not reflected,
        // no final xor) over the nine bytes "123456789".
        File.WriteAllText(Path.Combine(_folder, "check.bin"), "123456789");
        var file = await SnapshotIntegrity.DescribeAsync(Path.Combine(_folder, "check.bin"), "state", CancellationToken.None);
        Assert.Equal("crc64:6c40df5f0b497347", file.Checksum);
    }

    [Fact]
    public async Task AManifestFromBefore02IsVerifiedWithSha256()
    {
        var snapshot = await SaveAsync("saved state");
        // snapshot.json as 0.1 wrote it: "sha256" holds the bare hex digest.
        var legacy = ModelJson.Deserialize<SnapshotFile>(
            """{"name":"state.bin","role":"state","sizeBytes":11,"sha256":"83c3e3d4f8a6b9d6a7d1c8b8ed6b8a1b0a0a1c8a3f1e2c0e9f5b7f0b9c3f6d21"}""",
            "a test manifest");
        Assert.StartsWith("sha256:", legacy.Checksum);
        var wrong = Assert.Single(await SnapshotIntegrity.VerifyAsync(snapshot with { Files = [legacy] }, CancellationToken.None));
        Assert.Contains("does not match its checksum", wrong.Problem);
        var right = legacy with { Checksum = "sha256:" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData("saved state"u8)).ToLowerInvariant() };
        Assert.Empty(await SnapshotIntegrity.VerifyAsync(snapshot with { Files = [right] }, CancellationToken.None));
    }

    [Fact]
    public async Task AChecksumOfAnUnknownKindIsNamedNotTakenForDamage()
    {
        var snapshot = await SaveAsync("saved state");
        var problem = Assert.Single(await SnapshotIntegrity.VerifyAsync(snapshot with { Files = [snapshot.Files[0] with { Checksum = "blake9:00" }] }, CancellationToken.None));
        Assert.Contains("a checksum of a kind this version of MacVm does not know ('blake9:00')", problem.Problem);
    }
}
