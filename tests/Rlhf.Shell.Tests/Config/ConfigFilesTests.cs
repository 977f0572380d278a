using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>Every file in configs/ loads and validates, and what <c>config show</c> prints loads back to equal settings.</summary>
public class ConfigFilesTests
{
    public static TheoryData<string> FullConfigs()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TestPaths.Configs, "*.yaml").OrderBy(f => f, StringComparer.Ordinal)) data.Add(Path.GetFileName(f));
        return data;
    }

    public static TheoryData<string> ZeroTemplates()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Configs, "zero"), "*.yaml").OrderBy(f => f, StringComparer.Ordinal)) data.Add(Path.GetFileName(f));
        return data;
    }

    [Fact]
    public void Configs_folder_has_quickstart_every_algorithm_and_every_zero_stage()
    {
        var names = Directory.GetFiles(TestPaths.Configs, "*.yaml").Select(f => Path.GetFileNameWithoutExtension(f)!).ToHashSet();
        Assert.Contains("quickstart", names);
        foreach (var a in AlgorithmYaml.Names) Assert.Contains(a, names);
        var zero = Directory.GetFiles(Path.Combine(TestPaths.Configs, "zero"), "*.yaml").Select(f => Path.GetFileNameWithoutExtension(f)!).ToHashSet();
        Assert.Equal(new HashSet<string>
        {
            "zero0", "zero1", "zero2", "zero3", "zero3_offload",
            // ROLL's names for the same templates (ROLL: examples/config/deepspeed_*.yaml)
            "deepspeed_zero", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_cpuoffload",
        }, zero);
    }

    [Theory]
    [MemberData(nameof(FullConfigs))]
    public void Config_loads_validates_and_round_trips_through_show(string name)
    {
        var path = Path.Combine(TestPaths.Configs, name);
        Assert.StartsWith("# yaml-language-server: $schema=schema/rlhf.schema.json", File.ReadLines(path).First());
        var loaded = ConfigLoader.Load(path);
        var config = loaded.Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        var shown = ConfigLoader.ToYaml(config);
        var again = ConfigLoader.LoadText(shown, "shown.yaml").Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e) + "\n" + shown));
        Assert.Equal(config, again);
        Assert.Equal(shown, ConfigLoader.ToYaml(again));
    }

    [Theory]
    [MemberData(nameof(ZeroTemplates))]
    public void Zero_template_validates_and_composes_into_a_role(string name)
    {
        var path = Path.Combine(TestPaths.Configs, "zero", name);
        Assert.StartsWith("# yaml-language-server: $schema=../schema/deepspeed_templates.schema.json", File.ReadLines(path).First());
        var templates = ConfigLoader.LoadSection(path, DeepSpeedTemplates.Bind).Match(t => t, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        var stem = Path.GetFileNameWithoutExtension(name);
        var key = stem.StartsWith("deepspeed_", StringComparison.Ordinal) ? stem : "deepspeed_" + stem;
        var template = (DeepSpeedSettings?)typeof(DeepSpeedTemplates).GetProperties().Single(p => p.Name == string.Concat(key.Split('_').Select(s => char.ToUpperInvariant(s[0]) + s[1..]))).GetValue(templates);
        Assert.NotNull(template);
        // zero3_offload → 3; ROLL's deepspeed_zero (no digit) is stage 0.
        var afterZero = key["deepspeed_zero".Length..];
        var expectedStage = afterZero.Length > 0 && char.IsDigit(afterZero[0]) ? afterZero[0] - '0' : 0;
        Assert.Equal(expectedStage, template.ZeroOptimization.Stage);

        var reference = "${" + key + "}";
        var yaml = string.Join("\n",
            $"defaults: [zero/{stem}@_here_]",
            "training: { algorithm: ppo, total_episodes: 8 }",
            "data: { task: reverse }",
            $"engine: {reference}",
            "actor_train:",
            $"  strategy_args: {{ strategy_name: deepspeed_train, strategy_config: \"{reference}\" }}",
            "  training_args: { per_device_train_batch_size: 2, gradient_accumulation_steps: 2 }",
            "  device_mapping: list(range(0,8))",
            "");
        var c = ConfigLoader.LoadText(yaml, "wrapper.yaml", baseDirectory: TestPaths.Configs).Match(x => x, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        var ds = c.ActorTrain!.StrategyArgs.StrategyConfig!;
        Assert.Equal(expectedStage, ds.ZeroOptimization.Stage);
        Assert.Equal(32L, ds.TrainBatchSize); // 2 × 2 × 8 devices
        Assert.Equal(expectedStage, c.Engine.ZeroOptimization.Stage);
    }

    [Fact]
    public void Quickstart_is_the_embedded_default_described_by_the_issue()
    {
        var c = ConfigLoader.Load(Path.Combine(TestPaths.Configs, "quickstart.yaml")).Match(x => x, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        Assert.Equal(ModelType.Llama, c.Model.ModelType);
        Assert.Null(c.Model.Path);
        Assert.Equal((64L, 2L, 4L), (c.Model.HiddenSize, c.Model.NumHiddenLayers, c.Model.NumAttentionHeads));
        Assert.Equal(260L, c.Model.VocabSize);
        Assert.Equal(TokenizerKind.Byte, c.Tokenizer.Kind);
        Assert.NotNull(c.Data.Task);
        Assert.Equal(Algorithm.OnlineDpo, c.Training.Algorithm);
        Assert.InRange(c.Training.TotalEpisodes!.Value, 100, 1000);
        Assert.Equal(DeviceKind.Cpu, c.Training.Device);
        Assert.Equal(0L, c.Engine.ZeroOptimization.Stage);
    }

    [Fact]
    public void Ppo_roles_use_their_own_device_mapping_for_the_batch_rule()
    {
        var c = ConfigLoader.Load(Path.Combine(TestPaths.Configs, "examples", "ppo_pythia_tldr.yaml")).Match(x => x, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));
        Assert.Equal([0L, 1L, 2L, 3L], c.ActorTrain!.DeviceMapping!);
        Assert.Equal([4L, 5L, 6L, 7L], c.ActorInfer!.DeviceMapping!);
        Assert.Equal(16L * 4 * 4, c.ActorTrain.StrategyArgs.StrategyConfig!.TrainBatchSize);
        Assert.Equal(2L, c.Critic!.StrategyArgs.StrategyConfig!.ZeroOptimization.Stage);
        Assert.Equal(StrategyName.PagedInfer, c.ActorInfer.StrategyArgs.StrategyName);
    }
}
