using FsCheck;
using FsCheck.Fluent;
using Rlhf.Settings;
using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Tests.Training;

/// <summary>Synthetic tasks: the seeded generator, answers, the partial-credit gold reward, splits and imperfect demonstrations.</summary>
public class SyntheticTaskTests
{
    private static readonly FsCheck.Config Quick = FsCheck.Config.QuickThrowOnFailure.WithMaxTest(300).WithQuietOnSuccess(true);

    [Fact]
    public void SplitMix64_matches_the_reference_test_vector()
    {
        // Vigna's splitmix64.c seeded with 1234567 (also checked against a plain Python transcription).
        var r = new SplitMix64(1234567);
        Assert.Equal(new ulong[] { 6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821 },
            Enumerable.Range(0, 5).Select(_ => r.Next()).ToArray());
    }

    [Fact]
    public void The_same_seed_gives_the_same_prompts_everywhere()
    {
        // Pinned from an independent Python transcription of SplitMix64.Stream(42, 1) and the DIGITS= generator, so a
        // change of generator (or a platform-dependent one) fails here.
        var split = new ReverseTask(3, 6).Split(42, trainCount: 2, evalCount: 2);
        Assert.Equal(["58013=", "380484="], split.Eval);
        Assert.Equal(["245=", "427="], split.Train);
        Assert.NotEqual(split.Eval, new ReverseTask(3, 6).Split(43, 2, 2).Eval);
    }

    [Theory]
    [InlineData("sort", "3141=", "1134")]
    [InlineData("sort", "907=", "079")]
    [InlineData("reverse", "3141=", "1413")]
    [InlineData("copy", "0310=", "0310")]
    [InlineData("addition", "12+345=", "357")]
    [InlineData("addition", "999+1=", "1000")]
    [InlineData("addition", "999999999999999999+999999999999999999=", "1999999999999999998")]
    public void Answers_by_hand(string task, string prompt, string answer) =>
        Assert.Equal(answer, SyntheticTasks.Create(task, 1, 18).Answer(prompt));

    [Theory]
    [InlineData("sort", "31a=")]
    [InlineData("reverse", "3141")]
    [InlineData("copy", "=")]
    [InlineData("addition", "12-3=")]
    [InlineData("addition", "+3=")]
    public void A_prompt_of_another_form_is_a_clear_error(string task, string prompt)
    {
        var e = Assert.Throws<ArgumentException>(() => SyntheticTasks.Create(task, 1, 6).Answer(prompt));
        Assert.Contains(task, e.Message);
        Assert.Contains(prompt, e.Message);
    }

    [Fact]
    public void Config_rejects_an_unknown_task_and_an_inverted_digit_range_with_positions()
    {
        var v = Rlhf.Shell.Config.ConfigLoader.LoadText(
            "training: {algorithm: sft}\ndata:\n  task: sorting\n  task_min_digits: 5\n  task_max_digits: 4\n", "task.yaml");
        var errors = v.Match(_ => throw new Xunit.Sdk.XunitException("expected errors"), e => Rlhf.Shell.Config.ConfigLoader.Format(e));
        Assert.Contains("task.yaml:3", errors);
        Assert.Contains("unknown synthetic task 'sorting'; expected one of sort, reverse, copy, addition", errors);
        Assert.Contains("data.task_min_digits (5) is above data.task_max_digits (4)", errors);
    }

    [Fact]
    public void Unknown_task_names_the_known_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => SyntheticTasks.Create("sorting", 1, 3));
        Assert.Contains("data.task", e.Message);
        foreach (var n in SyntheticTasks.Names) Assert.Contains(n, e.Message);
    }

    [Theory]
    // answer 1134: "1134" + stop = 0.8·4/4 + 0.2
    [InlineData("3141=", "1134", true, 1.0)]
    [InlineData("3141=", "1134", false, 0.8)]
    // "1143": positions 0,1 right of 4 → 0.8·2/4 + 0.2
    [InlineData("3141=", "1143", true, 0.6)]
    // "11": 2 right, max(2, 4) = 4 → 0.4 + 0.2
    [InlineData("3141=", "11", true, 0.6)]
    // "113499": 4 right, max(6, 4) = 6 → 0.8·4/6
    [InlineData("3141=", "113499", false, 0.8 * 4 / 6)]
    [InlineData("3141=", "", true, 0.2)]
    public void Gold_reward_by_hand(string prompt, string completion, bool stopped, double expected) =>
        Assert.Equal(expected, new SortTask(1, 6).GoldReward(prompt, completion, stopped), 12);

    [Fact]
    public void Gold_reward_matches_a_plain_loop_and_stays_in_range() => Check.One(Quick,
        Prop.ForAll(Arb.From(Gen.Choose(0, int.MaxValue)), Arb.From(Gen.Elements("0123456789".ToCharArray()).ArrayOf().Select(c => new string(c))), Arb.From(Gen.Elements(true, false)),
            (seed, completion, stopped) =>
            {
                var task = new ReverseTask(1, 8);
                var prompt = task.Split(seed, 1, 0).Train[0];
                var answer = new string(prompt[..^1].Reverse().ToArray());
                var right = 0;
                for (var i = 0; i < answer.Length; i++) if (i < completion.Length && completion[i] == answer[i]) right++;
                var expected = 0.8 * right / Math.Max(answer.Length, completion.Length) + (stopped ? 0.2 : 0);
                var gold = task.GoldReward(prompt, completion, stopped);
                Assert.Equal(expected, gold, 12);
                Assert.InRange(gold, 0, 1);
                Assert.Equal(gold == 1.0, task.ExactMatch(prompt, completion, stopped));
            }));

    [Theory]
    [InlineData("sort")]
    [InlineData("reverse")]
    [InlineData("copy")]
    [InlineData("addition")]
    public void Splits_are_disjoint_distinct_and_the_eval_part_does_not_move_with_the_train_count(string name)
    {
        var task = SyntheticTasks.Create(name, 2, 5);
        var small = task.Split(7, 50, 20);
        var large = task.Split(7, 400, 20);
        Assert.Equal(small.Eval, large.Eval);
        Assert.Empty(large.Train.Intersect(large.Eval));
        Assert.Equal(420, large.Train.Concat(large.Eval).Distinct().Count());
        foreach (var p in large.Train) Assert.NotEmpty(task.Answer(p));
    }

    [Fact]
    public void Asking_for_more_prompts_than_exist_is_an_error()
    {
        var task = new CopyTask(1, 1);   // 10 prompts
        Assert.Equal(10, task.Split(1, 8, 2).Train.Count + 2);
        var e = Assert.Throws<ArgumentException>(() => task.Split(1, 9, 2));
        Assert.Contains("10 distinct prompts", e.Message);
    }

    [Fact]
    public void Split_from_settings_holds_out_the_eval_fraction()
    {
        var data = new DataSettings { Task = "sort", NumExamples = 200, EvalFraction = 0.1 };
        var split = SyntheticTasks.From(data).Split(data, 3);
        Assert.Equal(180, split.Train.Count);
        Assert.Equal(20, split.Eval.Count);
        Assert.All(split.Train, p => Assert.InRange(p.Length - 1, (int)data.TaskMinDigits, (int)data.TaskMaxDigits));
    }

    [Fact]
    public void Demonstrations_have_the_stated_error_rate_and_gold_well_below_the_maximum()
    {
        var task = new SortTask(4, 8);
        var prompts = task.Split(11, 3000, 0).Train;
        const double rate = 0.3;
        var demos = task.Demonstrations(prompts, rate, 11);
        long chars = 0, wrong = 0;
        foreach (var d in demos)
        {
            var answer = task.Answer(d.Prompt);
            Assert.Equal(answer.Length, d.Completion.Length);
            chars += answer.Length;
            wrong += answer.Zip(d.Completion).Count(z => z.Item1 != z.Item2);
        }
        // ~18,000 characters: the binomial standard deviation of the rate is ~0.0034, so ±0.02 is ~6σ.
        Assert.InRange((double)wrong / chars, rate - 0.02, rate + 0.02);
        var meanGold = demos.Average(d => task.GoldReward(d.Prompt, d.Completion, true));
        Assert.InRange(meanGold, 0.8 * (1 - rate) + 0.2 - 0.02, 0.8 * (1 - rate) + 0.2 + 0.02);
        Assert.Equal(demos, task.Demonstrations(prompts, rate, 11));   // seeded
        Assert.All(task.Demonstrations(prompts.Take(50).ToArray(), 0.0, 1), d => Assert.Equal(task.Answer(d.Prompt), d.Completion));
    }

    [Fact]
    public void Preference_pairs_are_ordered_by_gold_reward() => Check.One(Quick,
        Prop.ForAll(Arb.From(Gen.Choose(0, int.MaxValue)), Arb.From(Gen.Choose(0, 10)), (seed, tenths) =>
        {
            var task = new AdditionTask(1, 4);
            var prompts = task.Split(seed, 20, 0).Train;
            foreach (var p in task.PreferencePairs(prompts, tenths / 10.0, seed))
                Assert.True(task.GoldReward(p.Prompt, p.Chosen, true) > task.GoldReward(p.Prompt, p.Rejected, true), $"{p}");
        }));

    [Fact]
    public void Task_text_goes_through_the_byte_tokenizer_with_bos_and_eos()
    {
        var encoder = new PromptEncoder(new ByteTokenizer(260), maxPromptLength: 16, addBos: true);
        var e = encoder.Encode(new CompletionText("31=", "13"));
        Assert.Equal(new[] { ByteTokenizer.Bos, '3', '1', '=' }, e.PromptIds);
        Assert.Equal(new[] { '1', '3', ByteTokenizer.Eos }, e.CompletionIds);
    }
}
