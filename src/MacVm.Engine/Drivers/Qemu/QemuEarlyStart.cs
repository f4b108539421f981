using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// Starts QEMU before the host's own start-up. The engine computes QEMU's command line when it launches
/// a host (<see cref="QemuDriver.PrepareLaunch"/>) and leaves it in the VM folder; the host's first act
/// is to start it, so QEMU's start and the loading of a saved state overlap the host's runtime start,
/// argument parsing and manifest reading (about 50 ms of a restore). The VM object later adopts that
/// QEMU if its own command line is the same, and otherwise ends it and starts its own.
/// </summary>
public static class QemuEarlyStart
{
    /// <summary>The plan's file name in the VM folder: the executable and its arguments, NUL-separated.</summary>
    public const string PlanFileName = "qemu.launch";

    private static QemuProcess? s_started;

    /// <summary>Writes the plan for the next host start (atomically; the folder is private).</summary>
    internal static void WritePlan(VmPaths paths, string executable, IReadOnlyList<string> arguments) =>
        AtomicFile.WriteAllText(Path.Combine(paths.Directory, PlanFileName), string.Join('\0', arguments.Prepend(executable)));

    /// <summary>
    /// Called first thing by the host: starts the planned QEMU, if there is a plan, and consumes it;
    /// <paramref name="log"/> hears when it runs.
    /// </summary>
    public static void TryStart(string vmDirectory, Action<string> log)
    {
        var plan = Path.Combine(vmDirectory, PlanFileName);
        string text;
        try
        {
            text = File.ReadAllText(plan);
            File.Delete(plan);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return;
        }
        var parts = text.Split('\0');
        if (parts.Length < 2) return;
        var paths = new VmPaths(vmDirectory);
        // QEMU binds its sockets there (a short runtime folder when the VM folder is too deep for them).
        VmStore.CreatePrivateDirectory(paths.SocketDirectory);
        QemuVirtualMachine.PrepareFiles(paths);
        var started = QemuProcess.Start(parts[0], parts[1..]);
        _ = started.Launched.ContinueWith(t => log($"QEMU started early, by the host's first act (pid {t.Result.Id})."),
            CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        s_started = started;
    }

    /// <summary>The early QEMU if it was started with exactly this command line; one started with another is ended.</summary>
    internal static QemuProcess? Take(string executable, IReadOnlyList<string> arguments)
    {
        var started = Interlocked.Exchange(ref s_started, null);
        if (started is null) return null;
        if (started.Executable == executable && started.Arguments.SequenceEqual(arguments)) return started;
        _ = started.Launched.ContinueWith(_ => started.Kill(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        return null;
    }
}
