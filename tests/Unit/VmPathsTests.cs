using MacVm.Engine.Platform;
using MacVm.Engine.Store;
using Xunit;

namespace MacVm.Tests.Unit;

[Collection(EnvironmentVariableTests.Name)]
public class VmPathsTests
{
    [Fact]
    public void ShortFoldersKeepTheirSocketsInside()
    {
        var paths = new VmPaths("/tmp/s/vms/web1");
        Assert.Equal("/tmp/s/vms/web1", paths.SocketDirectory);
        Assert.False(paths.UsesRuntimeSocketDirectory);
        Assert.Equal("/tmp/s/vms/web1/control.sock", paths.ControlSocket);
    }

    [Fact]
    public void DeepFoldersPutSocketsInAShortRuntimeFolderThatEveryoneDerivesAlike()
    {
        var deep = "/tmp/" + string.Join('/', Enumerable.Repeat("quite-a-long-folder-name", 5)) + "/vms/web1";
        var a = new VmPaths(deep);
        var b = new VmPaths(deep);
        Assert.True(a.UsesRuntimeSocketDirectory);
        Assert.Equal(a.SocketDirectory, b.SocketDirectory);
        Assert.StartsWith(Path.GetTempPath(), a.SocketDirectory + "/");
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(a.ControlSocket) < Posix.UnixSocketPathLimit);
        Assert.NotEqual(new VmPaths(deep + "x").SocketDirectory, a.SocketDirectory);
    }

    [Fact]
    public void TooLongEvenForTheRuntimeFolderIsAClearError()
    {
        var old = Environment.GetEnvironmentVariable("TMPDIR");
        try
        {
            Environment.SetEnvironmentVariable("TMPDIR", "/tmp/" + new string('t', 120));
            var ex = Assert.Throws<PathTooLongException>(() => new VmPaths("/tmp/" + new string('v', 120)));
            Assert.Contains($"{Posix.UnixSocketPathLimit - 1}-byte limit", ex.Message);
            Assert.Contains("MACVM_HOME", ex.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("TMPDIR", old);
        }
    }

    [Fact]
    public void StoreRootFollowsMacVmHomeThenXdg()
    {
        var home = Environment.GetEnvironmentVariable("MACVM_HOME");
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        try
        {
            Environment.SetEnvironmentVariable("MACVM_HOME", "/x/store");
            Assert.Equal("/x/store", VmStore.DefaultRoot());
            Environment.SetEnvironmentVariable("MACVM_HOME", null);
            Environment.SetEnvironmentVariable("XDG_DATA_HOME", "/x/data");
            Assert.Equal("/x/data/macvm", VmStore.DefaultRoot());
            Environment.SetEnvironmentVariable("XDG_DATA_HOME", null);
            Assert.EndsWith("/.local/share/macvm", VmStore.DefaultRoot());
        }
        finally
        {
            Environment.SetEnvironmentVariable("MACVM_HOME", home);
            Environment.SetEnvironmentVariable("XDG_DATA_HOME", xdg);
        }
    }
}
