using MacVm.Engine.Operations;
using Xunit;

namespace MacVm.Tests.Unit;

public class WildcardNamesTests
{
    private static readonly string[] All = { "web1", "web2", "db1", "Web3" };

    [Fact]
    public void NoPatternMeansEverything() => Assert.Equal(All, WildcardNames.Resolve(All, null).Names);

    [Fact]
    public void WildcardsMatchCaseInsensitivelyAndMissLiterals()
    {
        var (names, missing) = WildcardNames.Resolve(All, new[] { "web*", "nope", "zz*" });
        Assert.Equal(new[] { "web1", "web2", "Web3" }, names);
        Assert.Equal(new[] { "nope" }, missing);
    }

    [Fact]
    public void BracketsAndQuestionMarks()
    {
        Assert.Equal(new[] { "web1", "db1" }, WildcardNames.Resolve(All, new[] { "*[1]" }).Names);
        Assert.Equal(new[] { "db1" }, WildcardNames.Resolve(All, new[] { "d?1" }).Names);
    }

    [Fact]
    public void EachNameOnlyOnce() => Assert.Single(WildcardNames.Resolve(All, new[] { "db1", "db*" }).Names);
}
