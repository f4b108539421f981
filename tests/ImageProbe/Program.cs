using System.Text.Json;
using SkiaSharp;

// usage: ImageProbe FILE...   One JSON line per file:
//   {"path", "format" (Png|Jpeg|other), "width", "height", "distinctColors", "darkFraction", "markerBluePixels", "error"}
// markerBluePixels counts the deep blue of the test guest's "MACVM TEST GUEST" bar (VGA blue, 0,0,170).
var exit = 0;
foreach (var path in args)
{
    var result = new Dictionary<string, object?> { ["path"] = path };
    try
    {
        var bytes = File.ReadAllBytes(path);
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data) ?? throw new InvalidDataException("not a picture SkiaSharp can decode");
        using var bitmap = SKBitmap.Decode(codec) ?? throw new InvalidDataException("decoding failed");
        result["format"] = codec.EncodedFormat switch { SKEncodedImageFormat.Png => "Png", SKEncodedImageFormat.Jpeg => "Jpeg", var f => f.ToString() };
        result["width"] = bitmap.Width;
        result["height"] = bitmap.Height;
        var colors = new HashSet<uint>();
        long dark = 0, blue = 0;
        foreach (var c in bitmap.Pixels)
        {
            colors.Add((uint)c);
            if (c.Red < 24 && c.Green < 24 && c.Blue < 24) dark++;
            if (c.Blue > 120 && c.Red < 60 && c.Green < 60) blue++;
        }
        result["distinctColors"] = colors.Count;
        result["darkFraction"] = Math.Round((double)dark / ((long)bitmap.Width * bitmap.Height), 5);
        result["markerBluePixels"] = blue;
    }
    catch (Exception ex) when (ex is IOException or InvalidDataException or UnauthorizedAccessException)
    {
        result["error"] = ex.Message;
        exit = 1;
    }
    Console.WriteLine(JsonSerializer.Serialize(result));
}
return exit;
