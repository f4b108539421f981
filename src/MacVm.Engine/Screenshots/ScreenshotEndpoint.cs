using System.Net;
using System.Net.Sockets;
using MacVm.Engine.Operations;

namespace MacVm.Engine.Screenshots;

/// <summary>
/// The rules of a VM's screenshot endpoint (HTTP on 127.0.0.1, GET /screenshot[?full=1], a per-VM token),
/// kept apart from the server in the host so that they are unit-tested.
/// </summary>
public static class ScreenshotEndpoint
{
    /// <summary>The one path served.</summary>
    public const string Path = "/screenshot";

    /// <summary>Highest TCP port.</summary>
    public const int MaxPort = 65535;

    /// <summary>What to answer a request: a status code, and for 200 whether the whole display was asked for.</summary>
    /// <param name="Status">The HTTP status code: 200, 401, 404 or 405.</param>
    /// <param name="Full">For 200: the whole display (?full=1) rather than a thumbnail.</param>
    /// <param name="Message">For other codes: the reason, in words.</param>
    public sealed record Decision(int Status, bool Full, string? Message);

    /// <summary>
    /// Decides a request. The token comes first, so that a caller without it learns nothing (not even
    /// which paths exist); then only GET of <see cref="Path"/> is served.
    /// </summary>
    public static Decision Decide(string method, string path, string? fullParameter, string? authorizationHeader, string? queryToken, string token)
    {
        if (!ScreenshotToken.Matches(token, ScreenshotToken.Presented(authorizationHeader, queryToken)))
            return new Decision(401, false, "A valid token is needed: send 'Authorization: Bearer <token>' or '?token=<token>'. (Get-MacVm <name>).GetScreenshotToken() gives it.");
        if (path != Path) return new Decision(404, false, $"Only {Path} is served.");
        if (method != "GET") return new Decision(405, false, "Only GET is allowed.");
        return new Decision(200, IsTrue(fullParameter), null);
    }

    private static bool IsTrue(string? value) =>
        value is not null && (value == "1" || value.Equals("true", StringComparison.OrdinalIgnoreCase) || value.Equals("yes", StringComparison.OrdinalIgnoreCase));

    /// <summary>Throws when <paramref name="port"/> is not a TCP port (null, meaning no endpoint, is fine).</summary>
    public static void ValidatePort(int? port)
    {
        if (port is < 0 or > MaxPort)
            throw new ArgumentOutOfRangeException("ScreenshotPort", port, $"ScreenshotPort {port} is not a TCP port: give 1 to {MaxPort}, or 0 for a free one.");
    }

    /// <summary>
    /// Throws a PortInUse error when a fixed <paramref name="port"/> cannot be bound on 127.0.0.1 now, so that
    /// New-MacVm says so before it makes anything (the host still reports it if the port is taken later).
    /// </summary>
    public static void CheckPortFree(int? port, string vmName)
    {
        if (port is not > 0) return;
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(IPAddress.Loopback, port.Value));
        }
        catch (SocketException ex)
        {
            throw PortInUse(port.Value, vmName, ex);
        }
    }

    /// <summary>The error for a port that cannot be bound.</summary>
    public static MacVmException PortInUse(int port, string vmName, Exception? inner = null) =>
        new(MacVmErrorKind.InvalidState, "PortInUse",
            $"Port {port} on 127.0.0.1 cannot be used for the screenshot endpoint of VM '{vmName}' ({inner?.Message ?? "in use"}). Give another -ScreenshotPort, or 0 for a free one.", vmName, inner);
}
