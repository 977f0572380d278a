using FsCheck;
using FsCheck.Fluent;
using Rlhf.Shell.Config;
using Rlhf.Shell.Telemetry;
using Rlhf.Shell.Tests.Config;
using Rlhf.Shell.Training.Quickstart;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;
using Xunit;

namespace Rlhf.Shell.Tests.Quickstart;

using Torch = Rlhf.Torch.Torch;

/// <summary>The quickstart's parts that need no training: pair labelling, the gold tap, the KV check, progress lines, run directories, the recipe files.</summary>
public class QuickstartPiecesTests
{
    private static readonly SortTask Sort = new(1, 6);

    private static RewardSample S(string prompt, string completion, bool stopped = true) => new(prompt, [1], completion, [2], stopped);

    [Fact]
    public void Pairs_choose_the_higher_gold_reward_drop_ties_and_ignore_an_odd_last_sample()
    {
        // "31=" → answer "13". gold("13", stopped) = 1.0, gold("31", stopped) = 0.2, gold("13", not stopped) = 0.8, gold("11", stopped) = 0.6.
        var samples = new[]
        {
            new[] { S("31=", "31"), S("31=", "13") },                    // pair: 13 over 31
            new[] { S("31=", "13", stopped: false), S("31=", "11") },   // 0.8 vs 0.6: the unstopped one wins
            new[] { S("31=", "31"), S("31=", "31") },                    // tie: dropped
            new[] { S("31=", "11"), S("31=", "31"), S("31=", "13") },   // one pair (11 over 31); the third sample has no partner
        };
        var (pairs, ties) = PolicySamples.GoldLabelledPairs(Sort, samples);
        Assert.Equal(1, ties);
        Assert.Equal([("13", "31"), ("13", "11"), ("11", "31")], pairs.Select(p => (p.Chosen, p.Rejected)).ToArray());
    }

    [Fact]
    public void Every_labelled_pair_has_a_strictly_higher_gold_reward_for_the_chosen_completion() => Check.One(
        FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true),
        Prop.ForAll(Arb.From(Gen.Choose(0, 9999)), Arb.From(Gen.Choose(0, 9999)), Arb.From(Gen.Choose(0, 9999)), (p, a, b) =>
        {
            var prompt = p.ToString("D4") + "=";
            var (pairs, ties) = PolicySamples.GoldLabelledPairs(Sort, [[S(prompt, a.ToString()), S(prompt, b.ToString())]]);
            Assert.Equal(1, pairs.Count + ties);
            var tie = Sort.GoldReward(prompt, a.ToString(), true) == Sort.GoldReward(prompt, b.ToString(), true);
            Assert.Equal(tie, ties == 1);
            foreach (var pair in pairs) Assert.True(Sort.GoldReward(prompt, pair.Chosen, true) > Sort.GoldReward(prompt, pair.Rejected, true));
        }));

    private sealed class Fixed(float[] scores) : IRewardSource
    {
        public string Name => "fixed";
        public Rlhf.Torch.Tensor Score(IReadOnlyList<RewardSample> batch) => Torch.From(scores[..batch.Count]);
    }

    private sealed class Capture : IMetricsSink
    {
        public List<MetricsRecord> Records { get; } = [];
        public void Write(MetricsRecord record) => Records.Add(record);
        public void Dispose() { }
    }

    [Fact]
    public void The_gold_tap_returns_the_proxys_scores_and_the_sink_adds_the_batchs_gold_reward()
    {
        using var scope = Torch.NewScope();
        var tap = new GoldTap(new Fixed([5f, -3f]), Sort);
        var capture = new Capture();
        var sink = new GoldMetricsSink(tap, capture);
        sink.Write(new MetricsRecord(1, 2, new Dictionary<string, double> { ["loss"] = 0.5 }));   // nothing scored yet: passed through
        Assert.Equal([5f, -3f], tap.Score([S("21=", "12"), S("21=", "22", stopped: false)]).ToArray<float>());
        sink.Write(new MetricsRecord(2, 4, new Dictionary<string, double> { ["loss"] = 0.25 }));
        Assert.False(capture.Records[0].Values.ContainsKey(GoldMetricsSink.GoldReward));
        var second = capture.Records[1].Values;
        // gold("12" for "21=", stopped) = 1.0; gold("22", not stopped) = 0.8 · 1/2 = 0.4 → mean 0.7; exact match 1 of 2.
        Assert.Equal(0.7, second[GoldMetricsSink.GoldReward], 12);
        Assert.Equal(0.5, second[GoldMetricsSink.ExactMatch], 12);
        Assert.Equal(0.25, second["loss"]);
    }

    private static Rlhf.Settings.RlhfConfig Online(params string[] overrides) =>
        ConfigLoader.Load(Path.Combine(TestPaths.Configs, "quickstart", "online.yaml"), ["training.async=false", .. overrides])
            .Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));

    [Fact]
    public void The_kv_check_fails_when_one_prompts_samples_do_not_fit_and_notes_when_a_step_does_not()
    {
        var config = Online();
        var model = Rlhf.Shell.Training.RoleModels.Config(config.Model);
        // Each sequence: ceil((16 + 8) / 16) = 2 blocks; a prompt's 2 samples need 4; a step's 16 prompts need 64.
        var notes = new List<string>();
        var e = Assert.Throws<ArgumentException>(() => KvBudget.Check(Online("generation.num_blocks=3"), model, notes.Add));
        Assert.Contains("holds 3 KV blocks", e.Message);
        Assert.Contains("need 4", e.Message);
        KvBudget.Check(Online("generation.num_blocks=4"), model, notes.Add);
        Assert.Single(notes);
        Assert.Contains("64 KV blocks", notes[0]);
        KvBudget.Check(Online("generation.num_blocks=64"), model, notes.Add);
        Assert.Single(notes);
    }

    private sealed class ManualClock : TimeProvider
    {
        public long Ticks;
        public override long TimestampFrequency => 1000;
        public override long GetTimestamp() => Ticks;
    }

    [Fact]
    public void Plain_progress_writes_one_line_per_step_with_the_stage_counts_and_a_linear_eta()
    {
        var text = new StringWriter();
        var clock = new ManualClock();
        using var progress = new PlainRunProgress(text, clock);
        var sink = progress.BeginStage("online", 40);
        clock.Ticks = 30_000;   // 30 s for the first 10 of 40 steps → 90 s left
        sink.Write(new MetricsRecord(10, 320, new Dictionary<string, double> { ["objective/scores"] = 0.5, ["objective/kl"] = 0.125, ["gold/reward"] = 0.75, ["tokens_per_s"] = 1234 }));
        var lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["== online: 40 steps", "[online 10/40] episodes 320 · reward 0.5 · gold 0.75 · KL 0.125 · 1,234 tokens/s · ETA 1m30s"], lines);
    }

    [Fact]
    public void Text_tables_pad_columns_to_their_widest_cell()
    {
        var t = TextTable.Render(["metric", "a"], [["gold", "0.5"], ["kl", "12.25"]]);
        Assert.Equal("metric      a\n------  -----\ngold      0.5\nkl      12.25\n", t);
    }

    [Fact]
    public void A_run_directory_reads_back_its_summary_flattened_and_its_stages()
    {
        var dir = TestPaths.TempDir();
        File.WriteAllText(Path.Combine(dir, "summary.json"), "{\"algorithm\": \"rloo\", \"async\": true, \"gold_win_rate\": 0.75, \"stage_seconds\": {\"sft\": 12.5}}");
        Directory.CreateDirectory(Path.Combine(dir, "sft"));
        File.WriteAllText(Path.Combine(dir, "sft", "metrics.jsonl"), "{\"step\": 1, \"episode\": 8, \"loss\": 2.0}\n{\"step\": 5, \"episode\": 40, \"loss\": 1.5, \"lr\": 0.001}\n");
        Directory.CreateDirectory(Path.Combine(dir, "plots"));
        var run = RunInfo.Read(dir);
        Assert.Equal(0.75, run.Summary["gold_win_rate"]);
        Assert.Equal(12.5, run.Summary["stage_seconds.sft"]);
        Assert.Equal("rloo", run.Labels["algorithm"]);
        Assert.Equal("true", run.Labels["async"]);
        var stage = Assert.Single(run.Stages);
        Assert.Equal(("sft", 5L), (stage.Name, stage.Steps));
        Assert.Equal(new Dictionary<string, double> { ["loss"] = 1.5, ["lr"] = 0.001 }, stage.Last());
        Assert.Equal([dir], RunInfo.List(dir).Select(r => r.Directory));

        var empty = TestPaths.TempDir();
        var e = Assert.Throws<ArgumentException>(() => RunInfo.Read(empty));
        Assert.Contains("not a run directory", e.Message);
        Assert.Empty(RunInfo.List(empty));
    }

    [Fact]
    public void Each_online_algorithm_of_the_recipe_trains_at_its_own_sections_learning_rate()
    {
        // online.yaml sets the rate per algorithm (best-of-K, with no KL term, needs a smaller step than the others); a
        // training.learning_rate would override every section's rate and silently give best-of-K the others' step.
        var configs = Path.Combine(TestPaths.Configs, "quickstart");
        var output = Path.Combine(Path.GetTempPath(), "rlhf-qs-" + Guid.NewGuid().ToString("N"));
        var rates = new Dictionary<string, double>();
        foreach (var quick in new[] { false, true })
            foreach (var algorithm in QuickstartPipeline.Algorithms)
            {
                var online = QuickstartPipeline.Load(new QuickstartOptions(configs, output, Quick: quick, Algorithm: algorithm)).Online;
                Assert.Equal(ConfigResolver.AlgorithmDefaults(online).LearningRate, online.Training.LearningRate);
                rates[algorithm] = online.Training.LearningRate!.Value;
            }
        Assert.True(rates["bok"] < rates["online_dpo"], $"best-of-K trains at {rates["bok"]}, online DPO at {rates["online_dpo"]}");
    }

    [Fact]
    public void The_shipped_recipe_loads_with_the_pipelines_paths_and_the_full_budget_exceeds_the_quick_one()
    {
        var configs = Path.Combine(TestPaths.Configs, "quickstart");
        var output = Path.Combine(Path.GetTempPath(), "rlhf-qs-" + Guid.NewGuid().ToString("N"));
        var full = QuickstartPipeline.Load(new QuickstartOptions(configs, output, Sync: true, Algorithm: "rloo"));
        var quick = QuickstartPipeline.Load(new QuickstartOptions(configs, output, Quick: true));
        Assert.Equal(Path.Combine(output, "sft", "final"), full.Online.Model.Path);
        Assert.Equal(Path.Combine(output, "sft", "final"), full.RewardModel.Model.Path);
        Assert.Equal(Path.Combine(output, "reward_model", "final"), full.Online.Reward!.ModelArgs!.ModelNameOrPath);
        Assert.Equal(Path.Combine(output, QuickstartPipeline.PairsFile), full.RewardModel.Data.Path);
        Assert.Null(full.RewardModel.Data.Task);
        Assert.Equal(Rlhf.Settings.Algorithm.Rloo, full.Online.Training.Algorithm);
        Assert.False(full.Online.Training.Async);
        // The default is the paper's: asynchronous online DPO, staleness 1.
        Assert.Equal(Rlhf.Settings.Algorithm.OnlineDpo, quick.Online.Training.Algorithm);
        Assert.True(quick.Online.Training.Async);
        Assert.Equal(1, quick.Online.Training.MaxStaleness);
        // The full recipe's reward model sees at least 2,000 pairs; --quick trains on less everywhere.
        Assert.True(full.RewardModel.Data.NumExamples >= 2000);
        Assert.True(quick.RewardModel.Data.NumExamples < full.RewardModel.Data.NumExamples);
        Assert.True(quick.Sft.Training.MaxSteps < full.Sft.Training.MaxSteps);
        Assert.True(quick.Online.Training.MaxSteps < full.Online.Training.MaxSteps);
        Assert.False(Directory.Exists(output));   // loading the recipe writes nothing

        var e = Assert.Throws<ArgumentException>(() => QuickstartPipeline.Load(new QuickstartOptions(configs, output, Algorithm: "sft")));
        Assert.Contains("--algorithm", e.Message);
    }
}
