using System.Diagnostics;

namespace MacVm.Engine.Drivers.Qemu;

/// <summary>
/// A QEMU child process. It is forked from a thread that lives exactly as long as QEMU, under
/// <c>setpriv --pdeathsig KILL</c>: the death signal fires when the forking thread ends, not the
/// process, so QEMU dies with its host and only then. What QEMU prints is kept until someone reads it,
/// so a QEMU started before the VM object exists (<see cref="QemuEarlyStart"/>) loses nothing.
/// </summary>
internal sealed class QemuProcess
{
    private readonly TaskCompletionSource<Process> _launched = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<Process?> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly object _gate = new();
    private readonly List<string> _unread = new();
    private readonly Queue<string> _tail = new();
    private Action<string>? _output;

    private QemuProcess(string executable, IReadOnlyList<string> arguments)
    {
        Executable = executable;
        Arguments = arguments;
    }

    /// <summary>The QEMU executable.</summary>
    public string Executable { get; }

    /// <summary>QEMU's arguments.</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <summary>Completes with the process once it runs; faults (IOException) when it could not be started.</summary>
    public Task<Process> Launched => _launched.Task;

    /// <summary>Completes when QEMU has exited (with its process), or with null when it never started.</summary>
    public Task<Process?> Ended => _ended.Task;

    /// <summary>Starts QEMU on its own thread and returns at once.</summary>
    public static QemuProcess Start(string executable, IReadOnlyList<string> arguments)
    {
        var qemu = new QemuProcess(executable, arguments);
        new Thread(qemu.Run) { IsBackground = true, Name = "qemu-parent" }.Start();
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
        if (_launched.Task.IsCompletedSuccessfully && _launched.Task.Result is { HasExited: false } process)
        {
            try { process.Kill(); }
            catch (InvalidOperationException) { /* exited meanwhile */ }
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
        _launched.TrySetResult(process);
        process.WaitForExit();
        _ended.TrySetResult(process);
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
