using MacVm.Engine.Store;
using Xunit;

namespace MacVm.Tests.Unit;

public class ModelJsonTests
{
    private static VmConfiguration Sample() => new()
    {
        Name = "web1",
        Image = "tiny",
        ImageDigest = "sha256:" + new string('a', 64),
        CpuCount = 2,
        MemoryMB = 512,
        Accelerator = VmAccelerator.Tcg,
        BootTimeoutSeconds = 42,
        ExtraKernelArguments = "macvm.x=1",
        CreatedUtc = new DateTimeOffset(2026, 12, 4, 10, 0, 0, TimeSpan.Zero),
        Boot = new BootSpec
        {
            KernelPath = "/s/images/tiny/kernel",
            InitrdPath = "/s/images/tiny/initrd",
            KernelCommandLine = "console=ttyS0",
            DiskFile = "disk.qcow2",
            GuestAgent = true,
            ReadyMarker = "MACVM-GUEST-READY",
        },
    };

    [Fact]
    public void VmConfigurationRoundTripsThroughJson()
    {
        var config = Sample();
        var json = ModelJson.Serialize(config);
        var back = ModelJson.Deserialize<VmConfiguration>(json, "test");
        Assert.Equal(config, back with { Boot = config.Boot });
        Assert.Equal(config.Boot, back.Boot);
        Assert.Equal(json, ModelJson.Serialize(back));
    }

    [Fact]
    public void EnumsAreWrittenAsNamesAndPropertiesInCamelCase()
    {
        var json = ModelJson.Serialize(Sample());
        Assert.Contains("\"accelerator\": \"Tcg\"", json);
        Assert.Contains("\"driver\": \"Qemu\"", json);
        Assert.Contains("\"memoryMB\": 512", json);
    }

    [Fact]
    public void StatusRoundTripsAndTerminalStatesAreKnown()
    {
        var status = new VmStatus { State = VmState.Failed, Reason = "boom", HostProcessId = 12, Accelerator = "tcg", GuestAgentReady = true };
        var back = ModelJson.Deserialize<VmStatus>(ModelJson.Serialize(status), "test");
        Assert.Equal(status, back);
        Assert.True(back.IsTerminal);
        Assert.False((status with { State = VmState.Running }).IsTerminal);
    }

    [Fact]
    public void ImageRoundTripsWithoutItsRuntimePath()
    {
        var image = new MacVmImage { Name = "tiny", Digest = "sha256:0123456789abcdef", Kernel = "kernel", Path = "/somewhere" };
        var json = ModelJson.Serialize(image);
        Assert.DoesNotContain("/somewhere", json);
        var back = ModelJson.Deserialize<MacVmImage>(json, "test");
        Assert.Equal(image with { Path = null }, back);
        Assert.Equal("0123456789ab", back.ShortDigest);
    }

    [Theory]
    [InlineData("")]
    [InlineData("{ not json")]
    [InlineData("null")]
    public void DamagedDocumentsGiveInvalidDataNamingTheFile(string text)
    {
        var ex = Assert.Throws<InvalidDataException>(() => ModelJson.Deserialize<VmConfiguration>(text, "The manifest 'x/vm.json'"));
        Assert.Contains("x/vm.json", ex.Message);
    }
}
