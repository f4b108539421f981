namespace MacVm.Engine.Screenshots;

/// <summary>
/// What a screenshot should look like, with the defaults the seed's dashboard used: a thumbnail
/// 800 px wide at JPEG quality 60, or the whole display at quality 85. Pure, so it is unit-tested.
/// </summary>
public static class ScreenshotSettings
{
    /// <summary>Width of a thumbnail, in pixels.</summary>
    public const int ThumbnailWidth = 800;

    /// <summary>JPEG quality of a thumbnail unless one is given.</summary>
    public const int ThumbnailQuality = 60;

    /// <summary>JPEG quality of a full screenshot unless one is given.</summary>
    public const int FullQuality = 85;

    /// <summary>Lowest and highest JPEG quality.</summary>
    public const int MinQuality = 1, MaxQuality = 100;

    /// <summary>The quality to use: the one given, else the default for <paramref name="full"/>.</summary>
    public static int ResolveQuality(bool full, int? quality)
    {
        if (quality is { } q && q is < MinQuality or > MaxQuality)
            throw new ArgumentOutOfRangeException(nameof(quality), q, $"Quality {q} is out of range: give {MinQuality} to {MaxQuality}.");
        return quality ?? (full ? FullQuality : ThumbnailQuality);
    }

    /// <summary>
    /// The picture's size for a display of <paramref name="width"/>×<paramref name="height"/>: the display's own
    /// size when <paramref name="full"/>, else <see cref="ThumbnailWidth"/> wide with the display's aspect ratio
    /// (never wider than the display: a thumbnail does not enlarge).
    /// </summary>
    public static (int Width, int Height) TargetSize(int width, int height, bool full)
    {
        if (width < 1 || height < 1)
            throw new ArgumentOutOfRangeException(nameof(width), $"A display of {width}x{height} pixels has nothing to show.");
        if (full || width <= ThumbnailWidth) return (width, height);
        var h = (int)Math.Max(1, Math.Round((double)height * ThumbnailWidth / width, MidpointRounding.AwayFromZero));
        return (ThumbnailWidth, h);
    }

    /// <summary>The file extension of a format (".jpg", ".png").</summary>
    public static string Extension(ScreenshotFormat format) => format == ScreenshotFormat.Png ? ".png" : ".jpg";

    /// <summary>The HTTP media type of a format.</summary>
    public static string MediaType(ScreenshotFormat format) => format == ScreenshotFormat.Png ? "image/png" : "image/jpeg";
}
