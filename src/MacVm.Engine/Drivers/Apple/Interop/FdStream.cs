using System.Runtime.InteropServices;

namespace MacVm.Engine.Drivers.Apple.Interop;

/// <summary>
/// A blocking stream over a socket or pipe descriptor it owns (vsock connections on macOS, whose address
/// family .NET's Socket does not know). Dispose shuts a socket down first, which wakes a blocked reader.
/// </summary>
internal sealed partial class FdStream : Stream
{
    private int _fd;

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nint count);

    /// <summary>Takes ownership of <paramref name="fd"/>.</summary>
    public FdStream(int fd) => _fd = fd;

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override unsafe int Read(Span<byte> buffer)
    {
        var fd = Descriptor();
        fixed (byte* p = buffer)
        {
            while (true)
            {
                var n = read(fd, p, buffer.Length);
                if (n >= 0) return (int)n;
                var errno = Marshal.GetLastPInvokeError();
                if (errno != 4 /* EINTR */) throw new IOException($"read failed: errno {errno}.");
            }
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // The read blocks a pool thread; cancellation shuts the socket down so it returns.
        using var registration = cancellationToken.Register(() => Libc.ShutdownBoth(_fd));
        var n = await Task.Run(() => Read(buffer.Span), CancellationToken.None).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        return n;
    }

    public override unsafe void Write(ReadOnlySpan<byte> buffer)
    {
        var fd = Descriptor();
        fixed (byte* p = buffer)
        {
            var done = 0;
            while (done < buffer.Length)
            {
                var n = write(fd, p + done, buffer.Length - done);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == 4) continue;
                    throw new IOException($"write failed: errno {errno}.");
                }
                done += (int)n;
            }
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    private int Descriptor() => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(FdStream));

    protected override void Dispose(bool disposing)
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Libc.ShutdownBoth(fd);
            Libc.Close(fd);
        }
        base.Dispose(disposing);
    }
}
