using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>
/// Every file in Config/Malformed states its expected errors in <c># expect: [file:]line:col: text</c> lines (text is
/// matched against <c>key.path: message</c>; <c>…</c> stands for any text) and its overrides in <c># args:</c> lines.
/// The loader must report exactly those errors, at those positions, and never throw or show a stack trace.
/// </summary>
public class MalformedCorpusTests
{
    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TestPaths.Malformed, "*.yaml").OrderBy(f => f, StringComparer.Ordinal))
            data.Add(Path.GetFileName(f));
        return data;
    }

    [Fact]
    public void Corpus_has_at_least_thirty_cases_and_each_states_an_expectation()
    {
        var files = Directory.GetFiles(TestPaths.Malformed, "*.yaml");
        Assert.True(files.Length >= 30, $"only {files.Length} malformed configs");
        Assert.All(files, f => Assert.Contains(File.ReadLines(f), l => l.StartsWith("# expect: ", StringComparison.Ordinal)));
    }

    private sealed record Expectation(string File, int Line, int Column, string Text)
    {
        public bool Matches(ConfigError e)
        {
            if (e.Line != Line || e.Column != Column) return false;
            if (!e.File.Replace('\\', '/').EndsWith(File, StringComparison.Ordinal)) return false;
            var actual = e.KeyPath.Length == 0 ? e.Message : $"{e.KeyPath}: {e.Message}";
            var at = 0;
            foreach (var part in Text.Split('…'))
            {
                var i = actual.IndexOf(part, at, StringComparison.Ordinal);
                if (i < 0 || (at == 0 && i != 0 && !Text.StartsWith('…'))) return false;
                at = i + part.Length;
            }
            return Text.EndsWith('…') || at == actual.Length;
        }

        public override string ToString() => $"{File}:{Line}:{Column}: {Text}";
    }

    private static Expectation Parse(string caseFile, string spec)
    {
        // [file:]line:col: text
        var parts = spec.Split(':', 4);
        return int.TryParse(parts[0], out var line)
            ? new Expectation(caseFile, line, int.Parse(parts[1]), spec[(parts[0].Length + parts[1].Length + 2)..].TrimStart())
            : new Expectation(parts[0], int.Parse(parts[1]), int.Parse(parts[2]), parts[3].TrimStart());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Malformed_config_reports_exactly_its_expected_errors(string name)
    {
        var path = Path.Combine(TestPaths.Malformed, name);
        var lines = File.ReadAllLines(path);
        var expected = lines.Where(l => l.StartsWith("# expect: ", StringComparison.Ordinal)).Select(l => Parse(name, l["# expect: ".Length..])).ToList();
        var args = lines.Where(l => l.StartsWith("# args: ", StringComparison.Ordinal)).Select(l => l["# args: ".Length..]).ToList();

        var result = ConfigLoader.Load(path, args);

        Assert.True(result.IsFail, $"{name} loaded without errors");
        var errors = result.FailToSeq().ToList();
        var report = string.Join("\n", errors);
        Assert.DoesNotContain("   at ", report);
        Assert.DoesNotContain("Exception", report);
        foreach (var e in expected)
            Assert.True(errors.Count(e.Matches) == 1, $"expected exactly one error like\n  {e}\ngot\n  {report.Replace("\n", "\n  ")}");
        Assert.True(errors.Count == expected.Count, $"expected {expected.Count} errors, got {errors.Count}:\n  {report.Replace("\n", "\n  ")}");
    }
}
