using System.Diagnostics;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using MacVm.Cmdlets.Commands;
using Xunit;

namespace MacVm.Tests.Unit;

/// <summary>The cmdlets hosted in-process: error ids, categories, and StopProcessing cancelling the engine.</summary>
[Collection(EnvironmentVariableTests.Name)]
public sealed class CmdletHostingTests : IDisposable
{
    private readonly string _store = Path.Combine("/tmp", "macvm-test-unit-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly string? _oldHome = Environment.GetEnvironmentVariable("MACVM_HOME");

    public CmdletHostingTests()
    {
        Directory.CreateDirectory(_store);
        Environment.SetEnvironmentVariable("MACVM_HOME", _store);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("MACVM_HOME", _oldHome);
        Directory.Delete(_store, recursive: true);
    }

    private static PowerShell NewShell()
    {
        var iss = InitialSessionState.CreateDefault2();
        foreach (var type in typeof(NewMacVmCommand).Assembly.GetTypes().Where(t => t.GetCustomAttributes(typeof(CmdletAttribute), false).Length > 0))
        {
            var attr = (CmdletAttribute)type.GetCustomAttributes(typeof(CmdletAttribute), false)[0];
            iss.Commands.Add(new SessionStateCmdletEntry($"{attr.VerbName}-{attr.NounName}", type, null));
        }
        return PowerShell.Create(iss);
    }

    [Fact]
    public void MissingVmIsANonTerminatingObjectNotFoundErrorPerName()
    {
        using var ps = NewShell();
        ps.AddCommand("Get-MacVm").AddParameter("Name", new[] { "a", "b" });
        var output = ps.Invoke();
        Assert.Empty(output);
        Assert.Equal(2, ps.Streams.Error.Count);
        Assert.All(ps.Streams.Error, e =>
        {
            Assert.Equal("GetMacVmNotFound,MacVm.Cmdlets.Commands.GetMacVmCommand", e.FullyQualifiedErrorId);
            Assert.Equal(ErrorCategory.ObjectNotFound, e.CategoryInfo.Category);
        });
        Assert.Equal("a", ps.Streams.Error[0].TargetObject);
    }

    [Fact]
    public void BadNameIsATerminatingInvalidArgument()
    {
        using var ps = NewShell();
        ps.AddCommand("New-MacVm").AddParameter("Name", "a/b").AddParameter("Image", "x");
        var ex = Assert.Throws<CmdletInvocationException>(() => ps.Invoke());
        var record = ((IContainsErrorRecord)ex).ErrorRecord;
        Assert.Equal("NewMacVmInvalidArgument,MacVm.Cmdlets.Commands.NewMacVmCommand", record.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, record.CategoryInfo.Category);
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_store, "*", SearchOption.AllDirectories), p => p.Contains("/vms/", StringComparison.Ordinal));
    }

    [Fact]
    public void StopProcessingCancelsAWaitingEngineCall()
    {
        var kernel = Path.Combine(_store, "kernel");
        File.WriteAllBytes(kernel, new byte[] { 1, 2, 3 });
        using (var setup = NewShell())
        {
            setup.AddCommand("Import-MacVmImage").AddParameter("Name", "k").AddParameter("Kernel", kernel);
            setup.AddStatement().AddCommand("New-MacVm").AddParameter("Name", "idle").AddParameter("Image", "k").AddParameter("NoStart");
            setup.Invoke();
            Assert.Empty(setup.Streams.Error);
        }

        using var ps = NewShell();
        ps.AddCommand("Wait-MacVm").AddParameter("Name", "idle").AddParameter("State", VmState.Running).AddParameter("TimeoutSec", 300);
        var sw = Stopwatch.StartNew();
        var running = ps.BeginInvoke();
        Thread.Sleep(300);
        Assert.False(running.IsCompleted, "Wait-MacVm should still be waiting for a VM that never starts");
        ps.Stop();
        Assert.Throws<PipelineStoppedException>(() => ps.EndInvoke(running));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"Stop took {sw.Elapsed}");
        Assert.Equal(PSInvocationState.Stopped, ps.InvocationStateInfo.State);
    }
}

/// <summary>Tests that change process-wide environment variables (MACVM_HOME, TMPDIR) run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EnvironmentVariableTests
{
    public const string Name = "Environment variables";
}
