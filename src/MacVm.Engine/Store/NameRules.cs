namespace MacVm.Engine.Store;

/// <summary>Rules for the names of VMs, images and snapshots: each becomes a folder name in the store.</summary>
public static class NameRules
{
    /// <summary>Longest accepted name.</summary>
    public const int MaxLength = 64;

    /// <summary>
    /// Returns null when <paramref name="name"/> is a valid name, else a sentence that names the problem
    /// and the fix. <paramref name="what"/> is the kind of thing named ("VM", "image").
    /// </summary>
    public static string? Check(string what, string? name)
    {
        if (string.IsNullOrEmpty(name))
            return $"The {what} name is empty. Give a name such as 'web1'.";
        var shown = Printable(name);
        if (name.Length > MaxLength)
            return $"The {what} name '{shown}' has {name.Length} characters; the limit is {MaxLength}. Use a shorter name.";
        if (name.Any(char.IsControl))
            return $"The {what} name '{shown}' contains a control character. Use letters, digits, '-', '_' and '.'.";
        if (name.Any(char.IsWhiteSpace))
            return $"The {what} name '{shown}' contains white space. Use '-' or '_' instead.";
        if (name.Contains('/') || name.Contains('\\'))
            return $"The {what} name '{shown}' contains a path separator ('/' or '\\'). A name is not a path: use letters, digits, '-', '_' and '.'.";
        if (name.Contains(".."))
            return $"The {what} name '{shown}' contains '..'. Use letters, digits, '-', '_' and single dots.";
        if (name[0] == '.' || name[0] == '-')
            return $"The {what} name '{shown}' starts with '{name[0]}'. Start it with a letter or a digit.";
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                return $"The {what} name '{shown}' contains '{c}'. Use letters, digits, '-', '_' and '.'.";
        }
        return null;
    }

    /// <summary>Throws <see cref="ArgumentException"/> when the name is not valid.</summary>
    public static void Validate(string what, string? name, string parameterName)
    {
        if (Check(what, name) is { } problem)
            throw new ArgumentException(problem, parameterName);
    }

    private static string Printable(string s)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var c in s.Length > 80 ? s[..80] + "…" : s)
            sb.Append(char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString());
        return sb.ToString();
    }
}
