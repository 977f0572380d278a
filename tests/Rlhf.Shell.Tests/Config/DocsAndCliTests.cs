using System.CommandLine;
using Rlhf.Settings;
using Rlhf.Shell.Cli;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>docs/config.md is current, documents every key, and the config command works as a CLI.</summary>
public class DocsAndCliTests
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

    [Fact]
    public void Show_prints_yaml_that_loads_back_and_errors_go_to_stderr_with_exit_code_1()
    {
        var dir = TestPaths.TempDir();
        var good = Path.Combine(dir, "good.yaml");
        File.WriteAllText(good, "training: {algorithm: grpo, total_episodes: 16}\ndata: {task: reverse}\n");
        var output = new StringWriter();
        var error = new StringWriter();
        var code = ConfigCommands.Build().Parse(["show", good, "grpo.beta=0.04"]).Invoke(new InvocationConfiguration { Output = output, Error = error });
        Assert.Equal(0, code);
        Assert.Equal("", error.ToString());
        var shown = ConfigLoader.LoadText(output.ToString(), "shown.yaml").Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        Assert.Equal(0.04, shown.Grpo.Beta);
        Assert.Equal(8L, shown.Generation.N);

        File.WriteAllText(good, "training: {algorithm: grpo, total_episodes: 16}\ndata: {task: reverse}\ngrpo: {bta: 1}\n");
        output = new StringWriter();
        error = new StringWriter();
        code = ConfigCommands.Build().Parse(["show", good]).Invoke(new InvocationConfiguration { Output = output, Error = error });
        Assert.Equal(1, code);
        Assert.Equal("", output.ToString());
        Assert.Contains("good.yaml:3:8: grpo.bta: unknown key 'bta'; did you mean 'beta'?", error.ToString());
        Assert.DoesNotContain("   at ", error.ToString());
    }

    [Fact]
    public void Docs_command_writes_the_reference()
    {
        var path = Path.Combine(TestPaths.TempDir(), "sub", "config.md");
        var output = new StringWriter();
        var code = ConfigCommands.Build().Parse(["docs", "--out", path]).Invoke(new InvocationConfiguration { Output = output, Error = new StringWriter() });
        Assert.Equal(0, code);
        Assert.Equal(ConfigDocs.Render(), File.ReadAllText(path));
    }
}
