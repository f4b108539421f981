using MacVm.Engine.Platform;
using MacVm.Engine.Store;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// Starts QEMU, and loads a restore's state, before the host's own start-up. When the engine launches a
/// host it writes the plan (<see cref="QemuDriver.PrepareLaunch"/>): QEMU's command line and, for a
/// restore, the state to load. Its launcher starts that QEMU itself, before the host's runtime even
/// starts, and hands the pid to the host; the host's first act is to adopt it (or, when the launcher
/// could not, to start it) and, for a restore, to load the state and resume the guest on a thread of its
/// own while the rest of the host starts. The VM object later adopts both if its own command line is the
/// same, and otherwise ends that QEMU and starts its own.
/// </summary>
public static class QemuEarlyStart
{
    /// <summary>The plan's file name in the VM folder.</summary>
    public const string PlanFileName = "qemu.launch";

    private const string Boot = "boot";
    private const string Restore = "restore";
    private const string RestoreMemoryImage = "restore-memory-image";

    private static EarlyQemu? s_started;

    /// <summary>
    /// Writes the plan for the next host start (atomically; the folder is private): NUL-separated, the
    /// kind (boot, restore, restore-memory-image), the state file (empty for boot), QEMU and its arguments.
    /// </summary>
    internal static void WritePlan(VmPaths paths, string executable, IReadOnlyList<string> arguments, RestoreSpec? restore)
    {
        var kind = restore is null ? Boot : QemuCommandLine.MapsMemoryImage(restore) ? RestoreMemoryImage : Restore;
        AtomicFile.WriteAllText(Path.Combine(paths.Directory, PlanFileName),
            string.Join('\0', new[] { kind, restore?.StatePath ?? "", executable }.Concat(arguments)));
    }

    /// <summary>
    /// Called first thing by the host: adopts the planned QEMU the launcher started (pid
    /// <paramref name="launchedPid"/>) or starts it, consumes the plan, and begins loading a restore's
    /// state; <paramref name="log"/> hears what happened.
    /// </summary>
    public static void TryStart(string vmDirectory, int? launchedPid, Action<string> log)
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
            Discard(launchedPid, log, $"its plan could not be read ({ex.Message})");
            return;
        }
        var parts = text.Split('\0');
        if (parts.Length < 4)
        {
            Discard(launchedPid, log, "its plan is not one");
            return;
        }
        var (kind, stateFile, executable, arguments) = (parts[0], parts[1], parts[2], parts[3..]);
        var paths = new VmPaths(vmDirectory);
        QemuProcess qemu;
        if (launchedPid is { } pid)
        {
            qemu = QemuProcess.Adopt(pid, executable, arguments, paths.QemuLog);
            log($"Adopted QEMU (pid {pid}), started by the launcher before the host.");
        }
        else
        {
            // QEMU binds its sockets there (a short runtime folder when the VM folder is too deep for them).
            VmStore.CreatePrivateDirectory(paths.SocketDirectory);
            QemuVirtualMachine.PrepareFiles(paths);
            qemu = QemuProcess.Start(executable, arguments);
            _ = qemu.Launched.ContinueWith(t => log($"QEMU started early, by the host's first act (pid {t.Result})."),
                CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        }
        var started = new EarlyQemu(qemu, kind == Boot ? null : stateFile);
        if (started.StateFile is { } state)
            started.Restored = Task.Run(() => RestoreAsync(started, paths, state, kind == RestoreMemoryImage, log));
        s_started = started;
    }

    /// <summary>Ends and reaps a QEMU the launcher started that cannot be adopted (the VM object starts its own).</summary>
    private static void Discard(int? launchedPid, Action<string> log, string why)
    {
        if (launchedPid is not { } pid) return;
        log($"Ending the QEMU the launcher started (pid {pid}): {why}.");
        Posix.Signal(pid, Posix.SigKill);
        new Thread(() => Posix.WaitForChild(pid)) { IsBackground = true, Name = "qemu-reaper" }.Start();
    }

    /// <summary>The early QEMU if it was started with exactly this command line; one started with another is ended.</summary>
    internal static EarlyQemu? Take(string executable, IReadOnlyList<string> arguments)
    {
        var started = Interlocked.Exchange(ref s_started, null);
        if (started is null) return null;
        var qemu = started.Process;
        if (qemu.Executable == executable && qemu.Arguments.SequenceEqual(arguments)) return started;
        _ = qemu.Launched.ContinueWith(_ => qemu.Kill(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
        return null;
    }

    /// <summary>
    /// Connects to the early QEMU, loads the state and resumes the guest. Any failure is the restore's:
    /// the host then cold-boots.
    /// </summary>
    private static async Task<QemuConnections> RestoreAsync(EarlyQemu early, VmPaths paths, string stateFile, bool memoryImage, Action<string> log)
    {
        var qemu = early.Process;
        QemuConnections? connections = null;
        try
        {
            connections = await QemuConnections.OpenAsync(paths, qemu, (name, data) =>
            {
                if (early.EventSink is { } sink) sink(name, data);
                else log($"QMP event {name} {data?.ToJsonString()}");
            }, CancellationToken.None).ConfigureAwait(false);
            log("QMP connected; loading the state.");
            await connections.Migration.LoadAndResumeAsync(stateFile, memoryImage, qemu.OutputTail, CancellationToken.None).ConfigureAwait(false);
            log($"Machine state loaded from '{stateFile}' and resumed, by the host's first act.");
            return connections;
        }
        catch (Exception ex)
        {
            if (connections is not null)
            {
                connections.Serial.Dispose();
                await connections.Qmp.DisposeAsync().ConfigureAwait(false);
            }
            if (ex is RestoreFailedException)
            {
                qemu.Kill();
                throw;
            }
            // QEMU that fails at start (a memory image it cannot map, say) exits: its words say why.
            await Task.WhenAny(qemu.Ended, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
            qemu.Kill();
            throw new RestoreFailedException($"QEMU could not load the machine state '{stateFile}': {ex.Message}{qemu.OutputTail()}", ex);
        }
    }
}

/// <summary>A QEMU started before the VM object existed, and the restore it is loading.</summary>
internal sealed class EarlyQemu(QemuProcess process, string? stateFile)
{
    /// <summary>The QEMU.</summary>
    public QemuProcess Process { get; } = process;

    /// <summary>The state being loaded, or null for a boot.</summary>
    public string? StateFile { get; } = stateFile;

    /// <summary>Completes once the state is loaded and the guest resumed (a restore only).</summary>
    public Task<QemuConnections>? Restored { get; set; }

    /// <summary>Who hears QEMU's events once the VM object has adopted the connection.</summary>
    public Action<string, System.Text.Json.Nodes.JsonObject?>? EventSink { get; set; }
}
