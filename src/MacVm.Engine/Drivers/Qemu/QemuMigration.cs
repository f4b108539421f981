using System.Text.Json.Nodes;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// Migrations over one QMP connection (saves stream out, restores stream in): started with QEMU's
/// MIGRATION events on and awaited on them, so that nobody polls every few milliseconds while QEMU
/// streams, and the end is seen at once. The connection's event handler passes events to <see cref="OnEvent"/>.
/// </summary>
internal sealed class QemuMigration
{
    private readonly QmpClient _qmp;
    private readonly Task _qemuEnded;
    private TaskCompletionSource? _ended;

    /// <summary>Migrates over <paramref name="qmp"/>; <paramref name="qemuEnded"/> completes if QEMU exits.</summary>
    public QemuMigration(QmpClient qmp, Task qemuEnded)
    {
        _qmp = qmp;
        _qemuEnded = qemuEnded;
    }

    /// <summary>Called with every QMP event of the connection.</summary>
    public void OnEvent(string name, JsonObject? data)
    {
        if (name == "MIGRATION" && data?["status"]?.GetValue<string>() is "completed" or "failed" or "cancelled")
            Volatile.Read(ref _ended)?.TrySetResult();
    }

    /// <summary>
    /// Starts a migration; the task returned completes when an event says it ended.
    /// </summary>
    /// <param name="command">migrate or migrate-incoming.</param>
    /// <param name="uri">Where the stream goes or comes from.</param>
    /// <param name="memoryInFile">
    /// The memory stays out of the stream (x-ignore-shared): it is in a file both sides map. Both ends of
    /// a migration must agree on this, so a snapshot with a memory image loads with it on, one without off.
    /// </param>
    /// <param name="ct">Cancels.</param>
    public async Task<Task> StartAsync(string command, string uri, bool memoryInFile, CancellationToken ct)
    {
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _ended, ended);
        await _qmp.ExecuteAsync("migrate-set-capabilities", new JsonObject
        {
            ["capabilities"] = new JsonArray(
                new JsonObject { ["capability"] = "events", ["state"] = true },
                new JsonObject { ["capability"] = "x-ignore-shared", ["state"] = memoryInFile }),
        }, ct).ConfigureAwait(false);
        await _qmp.ExecuteAsync(command, new JsonObject { ["uri"] = uri }, ct).ConfigureAwait(false);
        return ended.Task;
    }

    /// <summary>Returns when the migration ended, or after a while anyway (the caller then asks QEMU).</summary>
    public async Task NextCheckAsync(Task ended, CancellationToken ct)
    {
        if (ended.IsCompleted) await Task.Delay(1, ct).ConfigureAwait(false);
        else await Task.WhenAny(ended, _qemuEnded, Task.Delay(50, ct)).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// Loads a saved machine state into a QEMU waiting for one (-incoming defer) and resumes the guest.
    /// A state that does not load is a <see cref="RestoreFailedException"/> (QEMU then exits, or is useless).
    /// </summary>
    /// <param name="stateFile">The state file.</param>
    /// <param name="memoryInFile">The snapshot's memory is an image QEMU maps (see <see cref="StartAsync"/>).</param>
    /// <param name="qemuSaid">The end of QEMU's output, for the error.</param>
    /// <param name="ct">Cancels.</param>
    public async Task LoadAndResumeAsync(string stateFile, bool memoryInFile, Func<string> qemuSaid, CancellationToken ct)
    {
        try
        {
            var ended = await StartAsync("migrate-incoming", "exec:cat " + ShellQuote(stateFile), memoryInFile, ct).ConfigureAwait(false);
            while (true)
            {
                await NextCheckAsync(ended, ct).ConfigureAwait(false);
                var status = (await _qmp.ExecuteAsync("query-status", null, ct).ConfigureAwait(false))?["status"]?.GetValue<string>();
                if (status == "paused") break;
                var migration = (await _qmp.ExecuteAsync("query-migrate", null, ct).ConfigureAwait(false))?["status"]?.GetValue<string>();
                if (migration == "failed" || _qemuEnded.IsCompleted)
                    throw new RestoreFailedException($"QEMU could not load the machine state '{stateFile}'{qemuSaid()}");
            }
            await _qmp.ExecuteAsync("cont", null, ct).ConfigureAwait(false);
        }
        catch (QmpException ex)
        {
            throw new RestoreFailedException($"QEMU could not load the machine state '{stateFile}': {ex.Message}{qemuSaid()}", ex);
        }
    }

    private static string ShellQuote(string path) => "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
