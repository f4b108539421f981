using System.Diagnostics;
using System.Text;
using System.Threading.Channels;

namespace MacVm.Engine.GuestProtocol;

/// <summary>
/// The host's end of the guest agent channel (docs/guest-protocol.md): one UTF-8 line per request,
/// one line per reply. Replies carry the request's token, so a reply to a request that timed out
/// earlier is recognised and skipped instead of being taken for the current one.
/// </summary>
public sealed class GuestAgentChannel : IAsyncDisposable
{
    private readonly Func<CancellationToken, Task<Stream>> _connect;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Connection? _connection;
    private long _nextToken;

    /// <summary>Makes a channel that opens its stream with <paramref name="connect"/> when first needed (and again after a failure).</summary>
    public GuestAgentChannel(Func<CancellationToken, Task<Stream>> connect) => _connect = connect;

    /// <summary>Sends <c>ping &lt;token&gt;</c> and waits for <c>pong &lt;token&gt;</c>.</summary>
    public async Task<(string Token, TimeSpan RoundTrip)> PingAsync(TimeSpan timeout, CancellationToken ct)
    {
        var token = $"{Environment.ProcessId}-{Interlocked.Increment(ref _nextToken)}";
        var sw = Stopwatch.StartNew();
        await RequestAsync($"ping {token}", reply => reply == $"pong {token}", timeout, ct).ConfigureAwait(false);
        return (token, sw.Elapsed);
    }

    /// <summary>Runs <paramref name="script"/> with the guest's sh: <c>run &lt;base64&gt;</c> → <c>ok &lt;code&gt; &lt;base64 output&gt;</c>.</summary>
    public async Task<(int ExitCode, string Output)> RunAsync(string script, TimeSpan timeout, CancellationToken ct)
    {
        var request = "run " + Convert.ToBase64String(Encoding.UTF8.GetBytes(script));
        var reply = await RequestAsync(request, r => r.StartsWith("ok ", StringComparison.Ordinal) || r.StartsWith("error ", StringComparison.Ordinal), timeout, ct).ConfigureAwait(false);
        var parts = reply.Split(' ', 3);
        if (parts[0] != "ok" || parts.Length < 2 || !int.TryParse(parts[1], out var code))
            throw new IOException($"The guest agent refused the script: {reply}");
        var output = parts.Length == 3 && parts[2].Length > 0 ? Encoding.UTF8.GetString(Convert.FromBase64String(parts[2])) : "";
        return (code, output);
    }

    /// <summary>Asks the agent to power the guest off. Returns false if it did not acknowledge in time.</summary>
    public async Task<bool> RequestShutdownAsync(TimeSpan timeout, CancellationToken ct)
    {
        try
        {
            await RequestAsync("shutdown", reply => reply == "ok", timeout, ct).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is TimeoutException or IOException)
        {
            return false;
        }
    }

    /// <summary>Sends one request line and returns the first reply line <paramref name="isReply"/> accepts.</summary>
    public async Task<string> RequestAsync(string request, Func<string, bool> isReply, TimeSpan timeout, CancellationToken ct)
    {
        if (request.Contains('\n')) throw new ArgumentException("A request is one line.", nameof(request));
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timer.CancelAfter(timeout);
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var fresh = _connection is null;
            var connection = _connection ??= new Connection(await _connect(timer.Token).ConfigureAwait(false));
            try
            {
                // A request cut short by an earlier host's disconnect may still sit in the guest's
                // buffer; a lone tab line turns it into an invalid request instead of a prefix of ours.
                if (fresh) await connection.WriteLineAsync("\t", timer.Token).ConfigureAwait(false);
                await connection.WriteLineAsync(request, timer.Token).ConfigureAwait(false);
                while (true)
                {
                    var line = await connection.Lines.ReadAsync(timer.Token).ConfigureAwait(false);
                    if (isReply(line)) return line;
                }
            }
            catch (ChannelClosedException ex)
            {
                await DropAsync().ConfigureAwait(false);
                throw new IOException("The guest agent channel closed.", ex);
            }
            catch (IOException)
            {
                await DropAsync().ConfigureAwait(false);
                throw;
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new TimeoutException($"The guest agent did not answer '{request.Split(' ')[0]}' within {timeout.TotalMilliseconds:0} ms.");
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task DropAsync()
    {
        if (_connection is { } c)
        {
            _connection = null;
            await c.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await DropAsync().ConfigureAwait(false);
        _gate.Dispose();
    }

    private sealed class Connection : IAsyncDisposable
    {
        private readonly Stream _stream;
        private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
        private readonly Task _reader;

        public Connection(Stream stream)
        {
            _stream = stream;
            _reader = Task.Run(ReadAsync);
        }

        public ChannelReader<string> Lines => _lines.Reader;

        public Task WriteLineAsync(string line, CancellationToken ct) =>
            _stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"), ct).AsTask();

        private async Task ReadAsync()
        {
            try
            {
                using var reader = new StreamReader(_stream, new UTF8Encoding(false), false, 4096, leaveOpen: true);
                while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
                    _lines.Writer.TryWrite(line.TrimEnd('\r'));
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                // Closed under us; completing the channel tells the waiting request.
            }
            _lines.Writer.TryComplete();
        }

        public async ValueTask DisposeAsync()
        {
            await _stream.DisposeAsync().ConfigureAwait(false);
            await _reader.ConfigureAwait(false);
        }
    }
}
