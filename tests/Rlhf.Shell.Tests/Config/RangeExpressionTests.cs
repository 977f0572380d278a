using FsCheck;
using FsCheck.Fluent;
using Rlhf.Settings;

namespace Rlhf.Shell.Tests.Config;

/// <summary>The device range parser: Python's range semantics, list and +, and no evaluation of anything else.</summary>
public class RangeExpressionTests
{
    private static List<long> PythonRange(long start, long stop, long step)
    {
        var r = new List<long>();
        if (step > 0) for (var v = start; v < stop; v += step) r.Add(v);
        else for (var v = start; v > stop; v += step) r.Add(v);
        return r;
    }

    [Fact]
    public void Range_with_three_arguments_matches_python() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(500).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Choose(-50, 50)), Arb.From(Gen.Choose(-50, 50)), Arb.From(Gen.Choose(-7, 7).Where(s => s != 0)), (a, b, s) =>
        {
            var r = RangeExpression.Parse($"list(range({a}, {b},{s}))");
            Assert.Null(r.Error);
            Assert.Equal(PythonRange(a, b, s), r.Values);
        }));

    [Fact]
    public void Concatenation_is_the_sum_of_its_parts() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Choose(0, 20)), Arb.From(Gen.Choose(0, 20)), Arb.From(Gen.Choose(0, 9)), (a, b, x) =>
        {
            var r = RangeExpression.Parse($"range({a}) + [{x}, {x}] + list(range({b}, {a + b}))");
            Assert.Equal(PythonRange(0, a, 1).Append(x).Append(x).Concat(PythonRange(b, a + b, 1)), r.Values);
        }));

    [Fact]
    public void Arbitrary_text_never_throws_and_either_parses_or_says_where() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(1000).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Elements("list", "range", "(", ")", "[", "]", ",", "+", "1", "-3", " ", "x", "eval", "__import__")
            .ListOf().Select(parts => string.Concat(parts))), text =>
        {
            var r = RangeExpression.Parse(text);
            Assert.True((r.Values is null) != (r.Error is null));
            if (r.Error is not null) Assert.InRange(r.ErrorOffset, 0, text.Length);
        }));

    [Theory]
    [InlineData("list(range(0,8))", new long[] { 0, 1, 2, 3, 4, 5, 6, 7 })]
    [InlineData("range(4)", new long[] { 0, 1, 2, 3 })]
    [InlineData("list(range(8, 0, -3))", new long[] { 8, 5, 2 })]
    [InlineData("[0, 2] + list(range(4,6))", new long[] { 0, 2, 4, 5 })]
    [InlineData("[]", new long[0])]
    public void Examples(string text, long[] expected) => Assert.Equal(expected, RangeExpression.Parse(text).Values);

    [Theory]
    [InlineData("range(0, 8, 0)", "range step must not be zero", 0)]
    [InlineData("list(range(0,8)", "expected ')' but the expression ended", 15)]
    [InlineData("exec('rm -rf /')", "unknown function 'exec' (only list and range are understood)", 0)]
    [InlineData("range(1,2,3,4)", "range takes at most 3 arguments (start, stop, step)", 0)]
    [InlineData("range(0, 10000000000)", "range has more than 1000000 elements", 0)]
    [InlineData("[1, x]", "expected an integer, found 'x'", 4)]
    public void Errors_say_what_and_where(string text, string message, int offset)
    {
        var r = RangeExpression.Parse(text);
        Assert.Null(r.Values);
        Assert.Equal(message, r.Error);
        Assert.Equal(offset, r.ErrorOffset);
    }
}
