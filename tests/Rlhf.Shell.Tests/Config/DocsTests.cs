using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>docs/config.md is current and documents every key (the <c>rlhf config</c> commands are tested in Rlhf.Cli.Tests).</summary>
public class DocsTests
{
    [Fact]
    public void Committed_docs_are_not_stale()
    {
        var path = Path.Combine(TestPaths.RepoRoot, "docs", "config.md");
        Assert.True(File.Exists(path), "docs/config.md is missing: run `rlhf config docs`");
        Assert.True(File.ReadAllText(path) == ConfigDocs.Render(), "docs/config.md is stale: run `rlhf config docs` and commit it");
    }

    [Fact]
    public void Docs_list_every_key_of_every_section_with_its_default()
    {
        var docs = ConfigDocs.Render();
        void Check(IReadOnlyList<SettingsField> fields)
        {
            foreach (var f in fields)
            {
                Assert.Contains($"| `{f.Key}` |", docs);
                if (f.Children is { } c) Check(c());
            }
        }
        Check(RlhfConfig.Fields);
        Assert.Contains("## ZeroOptimization", docs);
        Assert.Contains("| `stage` | integer one of 0, 1, 2, 3 | `0` |", docs);
        Assert.Contains("| `beta` | number > 0 | `0.1` |", docs);
        Assert.Contains("`actor_train`, `actor_infer`, `reference`, `critic`", docs);
        Assert.Contains("## RewardSettings\n\nUsed at `reward`.", docs);   // reward: a function, a sum, or ROLL's role keys
    }
}
