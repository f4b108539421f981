using MacVm.Engine.Store;
using Xunit;

namespace MacVm.Tests.Unit;

public class NameRulesTests
{
    [Theory]
    [InlineData("web1")]
    [InlineData("a")]
    [InlineData("test-vm_2.restored")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123")]
    public void AcceptsPlainNames(string name) => Assert.Null(NameRules.Check("VM", name));

    [Theory]
    [InlineData("a/b", "path separator")]
    [InlineData("..", "'..'")]
    [InlineData("a..b", "'..'")]
    [InlineData("a b", "white space")]
    [InlineData("tab\there", "control character")]
    [InlineData("nl\n", "control character")]
    [InlineData(".hidden", "starts with '.'")]
    [InlineData("-x", "starts with '-'")]
    [InlineData("", "empty")]
    [InlineData("a:b", "contains ':'")]
    [InlineData("01234567890123456789012345678901234567890123456789012345678901234", "the limit is 64")]
    public void RejectsBadNamesSayingWhy(string name, string expected)
    {
        var problem = NameRules.Check("VM", name);
        Assert.NotNull(problem);
        Assert.Contains(expected, problem);
    }

    [Fact]
    public void ControlCharactersAreShownEscaped()
    {
        var problem = NameRules.Check("image", "x\u0001y")!;
        Assert.Contains("x\\x01y", problem);
        Assert.StartsWith("The image name", problem);
    }

    [Fact]
    public void ValidateThrowsArgumentExceptionWithTheParameterName()
    {
        var ex = Assert.Throws<ArgumentException>(() => NameRules.Validate("VM", "a/b", "Name"));
        Assert.Equal("Name", ex.ParamName);
    }
}
