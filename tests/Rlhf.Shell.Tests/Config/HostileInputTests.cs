using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Rlhf.Settings;
using Rlhf.Shell.Config;

namespace Rlhf.Shell.Tests.Config;

/// <summary>
/// Configs written to break the loader: deep nesting, alias bombs, endless or huge files, non-UTF-8 bytes, overflowing
/// batch products, impossible model shapes. Each must end in errors naming the file and position, never an exception,
/// a stack overflow, a hang or unbounded memory.
/// </summary>
public class HostileInputTests
{
    private const string Minimal = "training:\n  algorithm: online_dpo\n  total_episodes: 64\ndata:\n  task: reverse\n";

    private static List<ConfigError> Errors(LanguageExt.Validation<ConfigError, RlhfConfig> result)
    {
        Assert.True(result.IsFail, "the hostile config loaded without errors");
        var errors = result.FailToSeq().ToList();
        var report = string.Join("\n", errors);
        Assert.DoesNotContain("   at ", report);
        Assert.DoesNotContain("Exception", report);
        return errors;
    }

    public static TheoryData<int> Depths() => new() { 1_000, 100_000 };

    [Theory]
    [MemberData(nameof(Depths))]
    public void Deeply_nested_flow_lists_are_one_error_at_the_limit(int depth)
    {
        var yaml = Minimal + "engine: " + new string('[', depth) + new string(']', depth) + "\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "deep.yaml")));
        Assert.Equal(("deep.yaml", 6), (e.File, e.Line));
        Assert.Contains($"nested more than {ConfigLimits.MaxDepth} deep", e.Message);
    }

    [Theory]
    [MemberData(nameof(Depths))]
    public void Deeply_nested_flow_mappings_are_one_error(int depth)
    {
        var sb = new StringBuilder(Minimal + "engine: ");
        for (var i = 0; i < depth; i++) sb.Append("{a: ");
        sb.Append('1').Append('}', depth).Append('\n');
        var e = Assert.Single(Errors(ConfigLoader.LoadText(sb.ToString(), "deep.yaml")));
        Assert.Contains("nested more than", e.Message);
    }

    [Fact]
    public void Deeply_nested_block_mappings_are_one_error()
    {
        var sb = new StringBuilder(Minimal);
        for (var i = 0; i < 1_000; i++) sb.Append(' ', i).Append("k:\n");
        var e = Assert.Single(Errors(ConfigLoader.LoadText(sb.ToString(), "deep.yaml")));
        Assert.Equal(6 + ConfigLimits.MaxDepth, e.Line);
        Assert.Contains("nested more than", e.Message);
    }

    [Theory]
    [MemberData(nameof(Depths))]
    public void Deeply_nested_device_mapping_expression_is_an_error(int depth)
    {
        var expr = string.Concat(Enumerable.Repeat("list(", depth)) + "range(0,2)" + new string(')', depth);
        var yaml = Minimal + "actor_train:\n  strategy_args:\n    strategy_name: deepspeed_train\n  device_mapping: " + expr + "\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "deep.yaml")));
        Assert.Equal(9, e.Line);
        // 1,000 levels reach the expression's depth limit; 100,000 are refused earlier, as a scalar too long to read.
        if (depth == 1_000) Assert.Equal(("actor_train.device_mapping", true), (e.KeyPath, e.Message.Contains($"nested more than {RangeExpression.MaxDepth} deep")));
        else Assert.Contains($"the most is {ConfigLimits.MaxScalarChars}", e.Message);
    }

    [Fact]
    public void A_range_expression_nested_100000_deep_is_an_error_not_a_stack_overflow()
    {
        var expr = string.Concat(Enumerable.Repeat("list(", 100_000)) + "range(2)" + new string(')', 100_000);
        var r = RangeExpression.Parse(expr);
        Assert.Null(r.Values);
        Assert.Equal(RangeExpression.MaxDepth * 5, r.ErrorOffset);
        Assert.Contains("nested more than", r.Error);
    }

    /// <summary>Nine levels of ten aliases each: 10⁹ nodes if expanded.</summary>
    private static string Laughs()
    {
        var sb = new StringBuilder("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (var c = 'b'; c <= 'i'; c++)
        {
            var prev = (char)(c - 1);
            sb.Append(c).Append(": &").Append(c).Append(" [").Append(string.Join(",", Enumerable.Repeat("*" + prev, 10))).Append("]\n");
        }
        return sb.ToString();
    }

    [Fact]
    public void Billion_laughs_in_a_file_is_an_error()
    {
        var e = Assert.Single(Errors(ConfigLoader.LoadText(Minimal + "engine:\n" + string.Concat(Laughs().Split('\n').Select(l => l.Length == 0 ? "" : "  " + l + "\n")), "laughs.yaml")));
        Assert.Equal("laughs.yaml", e.File);
        Assert.Contains($"more than {ConfigLimits.MaxNodes} nodes", e.Message);
    }

    [Fact]
    public void Billion_laughs_in_an_override_is_an_error()
    {
        var flow = "{" + Laughs().TrimEnd('\n').Replace("\n", ", ") + "}";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(Minimal, "ok.yaml", overrides: ["engine.x=" + flow])));
        Assert.Equal(Overrides.Source, e.File);
        Assert.Equal(1, e.Line);
        Assert.Contains($"more than {ConfigLimits.MaxNodes} nodes", e.Message);
    }

    [Fact]
    public void A_few_aliases_still_load()
    {
        var yaml = Minimal.Replace("total_episodes: 64", "total_episodes: &n 64") + "generation:\n  max_new_tokens: *n\n";
        var c = ConfigLoader.LoadText(yaml);
        Assert.True(c.IsSuccess, string.Join("\n", c.FailToSeq()));
        Assert.Equal(64, c.SuccessToSeq().Head.Generation.MaxNewTokens);
    }

    [Fact]
    public void Dev_zero_as_the_config_is_an_error_with_bounded_reading()
    {
        if (!File.Exists("/dev/zero")) return; // Windows has no /dev/zero: nothing to test there
        var e = Assert.Single(Errors(ConfigLoader.Load("/dev/zero")));
        Assert.Equal("/dev/zero", e.File);
        Assert.Contains("larger than", e.Message);
    }

    [Fact]
    public void Dev_zero_as_an_include_is_an_error()
    {
        if (!File.Exists("/dev/zero")) return;
        var e = Assert.Single(Errors(ConfigLoader.LoadText("defaults:\n  - /dev/zero@_here_\n" + Minimal, "inc.yaml")));
        Assert.Contains("zero", e.File);
        Assert.Contains("larger than", e.Message);
    }

    [Fact]
    public void A_fifty_megabyte_file_is_an_error()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "big.yaml");
        using (var w = new StreamWriter(path))
        {
            w.Write(Minimal);
            var line = "# " + new string('x', 1000) + "\n";
            for (var i = 0; i < 50_000; i++) w.Write(line);
        }
        var e = Assert.Single(Errors(ConfigLoader.Load(path)));
        Assert.Equal((1, 1), (e.Line, e.Column));
        Assert.Contains($"larger than {ConfigLimits.MaxFileBytes / (1024 * 1024)} MiB", e.Message);
    }

    [Fact]
    public void A_long_key_is_an_error_naming_its_line()
    {
        var yaml = Minimal + "engine:\n  " + new string('k', ConfigLimits.MaxScalarChars + 1) + ": 1\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "key.yaml")));
        Assert.Equal(("key.yaml", 7, 3), (e.File, e.Line, e.Column));
        Assert.Contains($"the most is {ConfigLimits.MaxScalarChars}", e.Message);
    }

    [Fact]
    public void A_five_megabyte_override_is_an_error()
    {
        var e = Assert.Single(Errors(ConfigLoader.LoadText(Minimal, overrides: ["training.seed=" + new string('1', 5_000_000)])));
        Assert.Equal((Overrides.Source, 1), (e.File, e.Line));
        Assert.Contains($"the most is {ConfigLimits.MaxOverrideChars}", e.Message);
    }

    [Fact]
    public void A_non_utf8_file_is_an_error_at_the_bad_byte()
    {
        var dir = TestPaths.TempDir();
        var path = Path.Combine(dir, "latin1.yaml");
        var bytes = Encoding.UTF8.GetBytes(Minimal).Concat(Encoding.UTF8.GetBytes("model:\n  path: caf")).Append((byte)0xE9).Append((byte)'\n').ToArray();
        File.WriteAllBytes(path, bytes);
        var e = Assert.Single(Errors(ConfigLoader.Load(path)));
        Assert.Equal((7, 12), (e.Line, e.Column));
        Assert.Contains("not UTF-8 text (byte 0xE9", e.Message);
    }

    [Fact]
    public void An_override_with_two_documents_is_an_error()
    {
        var e = Assert.Single(Errors(ConfigLoader.LoadText(Minimal, overrides: ["training.seed=1\n---\n2"])));
        Assert.Equal("training.seed", e.KeyPath);
        Assert.Contains("2 YAML documents", e.Message);
    }

    [Fact]
    public void A_tab_in_the_indentation_is_reported_at_its_line()
    {
        var yaml = "training:\n  algorithm: online_dpo\n\ttotal_episodes: 64\ndata:\n  task: reverse\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "tab.yaml")));
        Assert.Equal((3, 1), (e.Line, e.Column));
        Assert.Contains("tab", e.Message);
    }

    [Fact]
    public void A_tab_before_a_top_level_key_is_reported_at_its_line()
    {
        var yaml = Minimal + "\tgeneration: {}\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "tab.yaml")));
        Assert.Equal(6, e.Line);
    }

    [Fact]
    public void Batch_products_that_overflow_are_an_error_not_zero()
    {
        var yaml = Minimal + "engine:\n  train_micro_batch_size_per_gpu: 4294967296\n  gradient_accumulation_steps: 4294967296\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "big.yaml")));
        Assert.Contains("overflow", e.Message);
        Assert.Contains("4294967296", e.Message);
    }

    [Fact]
    public void Batch_rule_never_wraps_or_divides_by_zero()
    {
        Check.One(FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true),
            Prop.ForAll(Arb.From(Gen.Choose(1, int.MaxValue)), Arb.From(Gen.Choose(1, int.MaxValue)), Arb.From(Gen.Choose(1, 4096)), (a, b, c) =>
            {
                // Scaled to the edge of long: every product either fits exactly or is refused.
                long m = (long)a << 16, g = (long)b << 16, w = c;
                var withTotal = (a + b) % 2 == 0;
                var r = BatchRule.Resolve(withTotal ? 1 : null, m, g, w, out var error);
                var exact = (System.Numerics.BigInteger)m * g * w;
                if (exact > long.MaxValue) Assert.Contains("overflow", error);
                else if (withTotal) Assert.Contains("inconsistent", error);
                else Assert.Equal((long)exact, r!.Value.TrainBatchSize);
            }));
    }

    [Fact]
    public void Five_heads_for_hidden_64_names_the_keys()
    {
        var yaml = Minimal + "model:\n  hidden_size: 64\n  num_attention_heads: 5\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "m.yaml")));
        Assert.Equal(("model.num_attention_heads", 8), (e.KeyPath, e.Line));
        Assert.Contains("model.hidden_size (64) is not a multiple of model.num_attention_heads (5)", e.Message);
    }

    [Fact]
    public void Key_value_heads_must_divide_query_heads()
    {
        var yaml = Minimal + "model:\n  hidden_size: 64\n  num_attention_heads: 4\n  num_key_value_heads: 3\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "m.yaml")));
        Assert.Equal("model.num_key_value_heads", e.KeyPath);
    }

    [Fact]
    public void Odd_rotary_head_dimension_is_an_error()
    {
        var yaml = Minimal + "model:\n  hidden_size: 12\n  num_attention_heads: 4\n";
        var e = Assert.Single(Errors(ConfigLoader.LoadText(yaml, "m.yaml")));
        Assert.Contains("= 3 is odd", e.Message);
    }
}
