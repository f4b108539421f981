using System.Security.Cryptography;
using System.Text;

namespace MacVm.Engine.Screenshots;

/// <summary>
/// The secret that guards a VM's screenshot endpoint: 32 random bytes, base64url. It lives in the VM's
/// folder (0700) in a 0600 file, so only the VM's owner can read it, and the endpoint is on loopback, so
/// only local users can reach it: together, no other local user can read the screen.
/// </summary>
public static class ScreenshotToken
{
    /// <summary>The query parameter that may carry the token (the Authorization header is the other way).</summary>
    public const string QueryParameter = "token";

    /// <summary>A new random token.</summary>
    public static string New() => Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>The token a request presents: "Authorization: Bearer T", else "?token=T"; null for none.</summary>
    public static string? Presented(string? authorizationHeader, string? queryToken)
    {
        if (authorizationHeader is { } h && h.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return h["Bearer ".Length..].Trim();
        return string.IsNullOrEmpty(queryToken) ? null : queryToken;
    }

    /// <summary>True when <paramref name="presented"/> is the token; the comparison takes the same time whatever the bytes.</summary>
    public static bool Matches(string expected, string? presented)
    {
        if (presented is null || expected.Length == 0) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(presented));
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
