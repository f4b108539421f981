using System.Diagnostics;
using MacVm.Engine.Platform;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// A QEMU child process of the host, however it was started: by the host (<see cref="Start"/>), or by the
/// engine's launcher just before the host's own start (<see cref="Adopt"/>). Either way it runs under
/// <c>setpriv --pdeathsig KILL</c> and dies with the thread that forked it, which lives exactly as long as
/// the host. What QEMU prints is kept until someone reads it, so a QEMU started before the VM object
/// exists loses nothing.
/// </summary>
internal sealed class QemuProcess
{
    private readonly TaskCompletionSource<int> _launched = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int?> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private readonly List<string> _unread = new();
    private readonly Queue<string> _tail = new();
    private Action<string>? _output;
    private Process? _process;

    private QemuProcess(string executable, IReadOnlyList<string> arguments)
    {
        Executable = executable;
        Arguments = arguments;
    }

    /// <summary>The QEMU executable.</summary>
    public string Executable { get; }

    /// <summary>QEMU's arguments.</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <summary>Completes with QEMU's pid once it runs; faults (IOException) when it could not be started.</summary>
    public Task<int> Launched => _launched.Task;

    /// <summary>
    /// Completes when QEMU has exited, with its exit code (128 + the signal when a signal ended it), or
    /// with null when it never started.
    /// </summary>
    public Task<int?> Ended => _ended.Task;

    /// <summary>Starts QEMU on a thread of its own (its parent for life) and returns at once.</summary>
    public static QemuProcess Start(string executable, IReadOnlyList<string> arguments)
    {
        var qemu = new QemuProcess(executable, arguments);
        new Thread(qemu.Run) { IsBackground = true, Name = "qemu-parent" }.Start();
        return qemu;
    }

    /// <summary>
    /// Takes over the QEMU (pid <paramref name="pid"/>) that the launcher forked before it became this
    /// process; its output went to <paramref name="outputFile"/>, read when it exits.
    /// </summary>
    public static QemuProcess Adopt(int pid, string executable, IReadOnlyList<string> arguments, string outputFile)
    {
        var qemu = new QemuProcess(executable, arguments);
        qemu._launched.TrySetResult(pid);
        new Thread(() =>
        {
            var code = Posix.WaitForChild(pid);
            try
            {
                foreach (var line in File.ReadLines(outputFile)) qemu.Record(line);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                qemu.Record($"(its output '{outputFile}' could not be read: {ex.Message})");
            }
            qemu._ended.TrySetResult(code < 0 ? null : code);
        }) { IsBackground = true, Name = "qemu-reaper" }.Start();
        return qemu;
    }

    /// <summary>Sends QEMU's output lines to <paramref name="sink"/>, starting with those printed so far.</summary>
    public void AttachOutput(Action<string> sink)
    {
        lock (_gate)
        {
            foreach (var line in _unread) sink(line);
            _unread.Clear();
            _output = sink;
        }
    }

    /// <summary>The last lines QEMU printed, for error messages ("" when none).</summary>
    public string OutputTail()
    {
        lock (_gate)
            return _tail.Count == 0 ? "" : ". QEMU said: " + string.Join(" | ", _tail);
    }

    /// <summary>Ends QEMU at once (no-op when it is not running).</summary>
    public void Kill()
    {
        // Until QEMU is reaped its pid cannot belong to another process.
        if (!_launched.Task.IsCompletedSuccessfully || _ended.Task.IsCompleted) return;
        if (_process is { } process)
        {
            try { process.Kill(); }
            catch (InvalidOperationException) { /* exited meanwhile */ }
        }
        else
        {
            Posix.Signal(_launched.Task.Result, Posix.SigKill);
        }
    }

    private void Run()
    {
        Process process;
        try
        {
            var setpriv = OperatingSystem.IsLinux() ? QemuInstallation.FindOnPath("setpriv") : null;
            var psi = new ProcessStartInfo(setpriv ?? Executable)
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            if (setpriv is not null)
            {
                foreach (var a in new[] { "--pdeathsig", "KILL", "--", Executable }) psi.ArgumentList.Add(a);
            }
            foreach (var a in Arguments) psi.ArgumentList.Add(a);
            process = Process.Start(psi) ?? throw new IOException($"'{Executable}' did not start.");
            process.OutputDataReceived += (_, e) => Record(e.Data);
            process.ErrorDataReceived += (_, e) => Record(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }
        catch (Exception ex)
        {
            _launched.TrySetException(new IOException($"Could not start QEMU ('{Executable}'): {ex.Message}", ex));
            _ended.TrySetResult(null);
            return;
        }
        _process = process;
        _launched.TrySetResult(process.Id);
        process.WaitForExit();
        _ended.TrySetResult(process.ExitCode);
        process.Dispose();
    }

    private void Record(string? line)
    {
        if (line is null) return;
        lock (_gate)
        {
            _tail.Enqueue(line);
            while (_tail.Count > 5) _tail.Dequeue();
            if (_output is null) _unread.Add(line);
            else _output(line);
        }
    }
}
