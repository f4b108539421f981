namespace MacVm.Engine.Screenshots;

/// <summary>
/// Reads the size of a PNG (IHDR) or JPEG (SOFn) picture from its header without decoding it: the
/// QEMU driver learns the display's size this way, and tests check what the encoder wrote.
/// </summary>
public static class ImageHeader
{
    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>The format and size of <paramref name="data"/>, or null when it is neither a PNG nor a JPEG.</summary>
    public static (ScreenshotFormat Format, int Width, int Height)? Read(ReadOnlySpan<byte> data)
    {
        if (TryReadPng(data, out var w, out var h)) return (ScreenshotFormat.Png, w, h);
        if (TryReadJpeg(data, out w, out h)) return (ScreenshotFormat.Jpeg, w, h);
        return null;
    }

    private static bool TryReadPng(ReadOnlySpan<byte> data, out int width, out int height)
    {
        width = height = 0;
        // Signature, then the IHDR chunk: length (4), type (4), width (4), height (4).
        if (data.Length < 24 || !data[..8].SequenceEqual(PngSignature) || !data.Slice(12, 4).SequenceEqual("IHDR"u8)) return false;
        width = BigEndian32(data[16..]);
        height = BigEndian32(data[20..]);
        return width > 0 && height > 0;
    }

    private static bool TryReadJpeg(ReadOnlySpan<byte> data, out int width, out int height)
    {
        width = height = 0;
        if (data.Length < 4 || data[0] != 0xFF || data[1] != 0xD8) return false;
        var i = 2;
        while (i + 4 <= data.Length)
        {
            if (data[i] != 0xFF) return false;
            var marker = data[i + 1];
            if (marker == 0xFF) { i++; continue; } // fill byte
            if (marker is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7)) { i += 2; continue; } // no length
            if (marker == 0xD9 || marker == 0xDA) return false; // end, or scan data before any frame header
            var length = (data[i + 2] << 8) | data[i + 3];
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision (1), height (2), width (2).
            if (marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC)
            {
                if (i + 9 > data.Length) return false;
                height = (data[i + 5] << 8) | data[i + 6];
                width = (data[i + 7] << 8) | data[i + 8];
                return width > 0 && height > 0;
            }
            i += 2 + length;
        }
        return false;
    }

    private static int BigEndian32(ReadOnlySpan<byte> b) => (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
}
