namespace MacVm;

/// <summary>How a screenshot is encoded.</summary>
public enum ScreenshotFormat
{
    /// <summary>JPEG (lossy, small): the default.</summary>
    Jpeg,

    /// <summary>PNG (lossless).</summary>
    Png,
}

/// <summary>
/// The answer of Get-MacVmScreenshot: one picture of a VM's display, either in memory
/// (<see cref="Data"/>) or written to <see cref="Path"/>.
/// </summary>
public sealed record MacVmScreenshot
{
    /// <summary>The VM.</summary>
    public required string VMName { get; init; }

    /// <summary>Pixels across, of the picture (800 for a thumbnail of a wider display).</summary>
    public int Width { get; init; }

    /// <summary>Pixels down, of the picture.</summary>
    public int Height { get; init; }

    /// <summary>Pixels across of the VM's display.</summary>
    public int DisplayWidth { get; init; }

    /// <summary>Pixels down of the VM's display.</summary>
    public int DisplayHeight { get; init; }

    /// <summary>How the picture is encoded.</summary>
    public ScreenshotFormat Format { get; init; }

    /// <summary>The JPEG quality used (1–100); null for PNG.</summary>
    public int? Quality { get; init; }

    /// <summary>True for the whole display at its own size, false for a thumbnail.</summary>
    public bool Full { get; init; }

    /// <summary>When the display was captured (UTC).</summary>
    public DateTimeOffset TakenUtc { get; init; }

    /// <summary>How long capturing and encoding took in the VM's host, in milliseconds.</summary>
    public double DurationMs { get; init; }

    /// <summary>The encoded picture's size in bytes.</summary>
    public long SizeBytes { get; init; }

    /// <summary>The encoded picture, unless it was written to <see cref="Path"/>.</summary>
    public byte[]? Data { get; init; }

    /// <summary>The file the picture was written to, if any.</summary>
    public string? Path { get; init; }

    /// <inheritdoc/>
    public override string ToString() => Path ?? $"{VMName} {Width}x{Height} {Format}";
}
