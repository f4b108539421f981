using MacVm.Engine.Drivers.Apple;
using Xunit;

namespace MacVm.Tests.Unit.Apple;

/// <summary>The model's Apple-driver parts: pure, JSON round-trippable.</summary>
public class AppleModelTests
{
    [Fact]
    public void AMacGuestConfigurationRoundTripsThroughJson()
    {
        var config = new VmConfiguration
        {
            Name = "mac1",
            Driver = VmDriverKind.Apple,
            Image = "sonoma",
            ImageDigest = "sha256:" + new string('b', 64),
            MacAddress = "02:11:22:33:44:55",
            SharedDirectory = "/Users/ci/src",
            Boot = new BootSpec
            {
                DiskFile = "disk.img",
                MacPlatform = new MacPlatformSpec
                {
                    HardwareModelPath = "/s/images/sonoma/hardware-model",
                    MachineIdentifierPath = "/s/images/sonoma/machine-identifier",
                    AuxiliaryStorageFile = "auxiliary-storage",
                },
            },
        };
        var json = ModelJson.Serialize(config);
        Assert.Contains("\"driver\": \"Apple\"", json, StringComparison.Ordinal);
        var back = ModelJson.Deserialize<VmConfiguration>(json, "test");
        Assert.Equal(config.Boot.MacPlatform, back.Boot.MacPlatform);
        Assert.Equal(config with { Boot = back.Boot }, back);
        Assert.Equal(json, ModelJson.Serialize(back));
    }

    [Fact]
    public void AMacImageRoundTripsThroughJson()
    {
        var image = new MacVmImage
        {
            Name = "sonoma",
            Kind = ImageKind.MacOS,
            Digest = "sha256:0123456789abcdef",
            Disk = "disk.img",
            DiskFormat = "raw",
            HardwareModel = "hardware-model",
            MachineIdentifier = "machine-identifier",
            AuxiliaryStorage = "auxiliary-storage",
            Source = "tart:/Users/ci/.tart/vms/sonoma",
        };
        var json = ModelJson.Serialize(image);
        Assert.Contains("\"kind\": \"MacOS\"", json, StringComparison.Ordinal);
        Assert.Equal(image, ModelJson.Deserialize<MacVmImage>(json, "test"));
    }

    [Fact]
    public void TheDerivedMacAddressIsStableLocallyAdministeredAndPerVm()
    {
        var a = new VmConfiguration { Name = "a", Image = "i", ImageDigest = "d", Boot = new BootSpec() };
        var b = a with { Id = Guid.NewGuid() };
        var mac = VzConfigurationBuilder.MacAddressOf(a);
        Assert.Matches("^02(:[0-9a-f]{2}){5}$", mac);
        Assert.Equal(mac, VzConfigurationBuilder.MacAddressOf(a with { Name = "renamed" }));
        Assert.NotEqual(mac, VzConfigurationBuilder.MacAddressOf(b));
        Assert.Equal("02:aa:bb:cc:dd:ee", VzConfigurationBuilder.MacAddressOf(a with { MacAddress = "02:aa:bb:cc:dd:ee" }));
    }
}
