using Rlhf.Shell.Training.Data;

namespace Rlhf.Shell.Training.Tasks;

/// <summary>The prompts of a synthetic task, split into a training part and a held-out evaluation part (disjoint).</summary>
public sealed record TaskSplit(IReadOnlyList<string> Train, IReadOnlyList<string> Eval);

/// <summary>
/// A built-in synthetic task: prompts drawn from a seed, the correct answer of each prompt, a gold reward with partial
/// credit, exact match, and imperfect demonstrations for SFT — so every algorithm can be tried with no download.
/// Texts are plain strings; <see cref="PromptEncoder"/> turns them into token ids with the model's tokenizer.
/// <para>
/// <b>Gold reward.</b> For a completion <c>c</c> (the decoded text before the stop token, special tokens dropped) of a
/// prompt whose answer is <c>a</c>:
/// <c>gold = 0.8 · matches(c, a) / max(|c|, |a|) + 0.2 · [the completion ended with the stop token]</c>, where
/// <c>matches</c> counts the positions <c>i &lt; min(|c|, |a|)</c> with <c>c[i] = a[i]</c> (lengths in UTF-16 code units;
/// every answer is ASCII). So the gold reward lies in [0, 1]; it is 1 exactly for the right answer followed by the
/// stop token; extra or missing characters cost credit through the <c>max</c>; a response that never stops loses the
/// 0.2 stop bonus (the missing-stop penalty of the algorithms comes on top, in the reward source).
/// </para>
/// </summary>
public abstract class SyntheticTask
{
    /// <summary>Weight of the fraction of answer positions right.</summary>
    public const double PositionWeight = 0.8;

    /// <summary>Bonus for ending the completion with the stop token.</summary>
    public const double StopBonus = 0.2;

    /// <summary>Longest operand this implementation generates (an 18-digit sum still fits in 64 bits).</summary>
    public const int MaxSupportedDigits = 18;

    /// <summary>A task whose operands have between <paramref name="minDigits"/> and <paramref name="maxDigits"/> digits.</summary>
    protected SyntheticTask(int minDigits, int maxDigits)
    {
        if (minDigits < 1 || maxDigits < minDigits || maxDigits > MaxSupportedDigits)
            throw new ArgumentOutOfRangeException(nameof(minDigits),
                $"operand digits must satisfy 1 ≤ min ≤ max ≤ {MaxSupportedDigits}; got min {minDigits}, max {maxDigits}");
        MinDigits = minDigits;
        MaxDigits = maxDigits;
    }

    /// <summary>The task's name, as <c>data.task</c> and <c>reward: {function: …}</c> spell it.</summary>
    public abstract string Name { get; }

    /// <summary>One line saying what the task asks and how its prompts look.</summary>
    public abstract string Description { get; }

    /// <summary>Fewest digits of an operand.</summary>
    public int MinDigits { get; }

    /// <summary>Most digits of an operand.</summary>
    public int MaxDigits { get; }

    /// <summary>Number of distinct prompts the task can generate.</summary>
    public abstract double PromptSpace { get; }

    /// <summary>The correct completion of <paramref name="prompt"/>; throws <see cref="ArgumentException"/> for a prompt not of this task's form.</summary>
    public abstract string Answer(string prompt);

    /// <summary>Draws one prompt.</summary>
    protected abstract string NewPrompt(SplitMix64 rng);

    /// <summary>The fraction of answer positions right: <c>matches(c, a) / max(|c|, |a|)</c>, in [0, 1].</summary>
    public static double PositionCredit(string completion, string answer)
    {
        var longest = Math.Max(completion.Length, answer.Length);
        if (longest == 0) return 1.0;
        var matches = 0;
        for (var i = 0; i < Math.Min(completion.Length, answer.Length); i++)
            if (completion[i] == answer[i]) matches++;
        return (double)matches / longest;
    }

    /// <summary>The gold reward defined on the class: <c>0.8 · PositionCredit + 0.2 · stopped</c>, in [0, 1].</summary>
    public double GoldReward(string prompt, string completion, bool finishedWithStop) =>
        PositionWeight * PositionCredit(completion, Answer(prompt)) + (finishedWithStop ? StopBonus : 0.0);

    /// <summary>Whether the completion is exactly the answer and ended with the stop token (gold reward 1).</summary>
    public bool ExactMatch(string prompt, string completion, bool finishedWithStop) =>
        finishedWithStop && completion == Answer(prompt);

    /// <summary>
    /// Distinct prompts from <paramref name="seed"/>: the first <paramref name="evalCount"/> form the evaluation split and
    /// the next <paramref name="trainCount"/> the training split, so the evaluation prompts of a seed do not depend on
    /// how many training prompts are drawn, and no evaluation prompt is trained on.
    /// </summary>
    public TaskSplit Split(long seed, int trainCount, int evalCount)
    {
        if (trainCount < 0 || evalCount < 0) throw new ArgumentOutOfRangeException(nameof(trainCount), "prompt counts cannot be negative");
        if (trainCount + (double)evalCount > PromptSpace)
            throw new ArgumentException(
                $"task {Name} with {MinDigits}–{MaxDigits} digits has {PromptSpace} distinct prompts, fewer than the {trainCount} training + {evalCount} evaluation prompts asked for");
        var rng = SplitMix64.Stream(seed, 1);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var all = new List<string>(trainCount + evalCount);
        while (all.Count < trainCount + evalCount)
        {
            var p = NewPrompt(rng);
            if (seen.Add(p)) all.Add(p);
        }
        return new TaskSplit(all.GetRange(evalCount, trainCount), all.GetRange(0, evalCount));
    }

    /// <summary>
    /// The split the data settings ask for: <c>num_examples</c> prompts in all, <c>round(num_examples · eval_fraction)</c>
    /// of them held out, drawn from <paramref name="seed"/> (the run's <c>training.seed</c>).
    /// </summary>
    public TaskSplit Split(Rlhf.Settings.DataSettings data, long seed)
    {
        if (data.NumExamples is not long n)
            throw new ArgumentException($"data.num_examples: synthetic task {Name} needs the number of prompts to draw");
        var eval = (int)Math.Round(n * data.EvalFraction, MidpointRounding.AwayFromZero);
        return Split(seed, checked((int)n) - eval, eval);
    }

    /// <summary>
    /// An imperfect demonstration: the answer with each character independently replaced, with probability
    /// <paramref name="errorRate"/>, by a different digit drawn uniformly. Its expected gold reward (with the stop token
    /// appended) is <c>0.8 · (1 − errorRate) + 0.2</c>, so feedback has room to improve on an SFT policy trained on it.
    /// </summary>
    public string Demonstration(string prompt, double errorRate, SplitMix64 rng)
    {
        if (!(errorRate is >= 0 and <= 1)) throw new ArgumentOutOfRangeException(nameof(errorRate), errorRate, "an error rate lies in [0, 1]");
        var answer = Answer(prompt).ToCharArray();
        for (var i = 0; i < answer.Length; i++)
            if (rng.NextDouble() < errorRate) answer[i] = Corrupt(answer[i], rng);
        return new string(answer);
    }

    /// <summary>One imperfect demonstration per prompt (see <see cref="Demonstration(string, double, SplitMix64)"/>), drawn from <paramref name="seed"/>.</summary>
    public IReadOnlyList<CompletionText> Demonstrations(IReadOnlyList<string> prompts, double errorRate, long seed)
    {
        var rng = SplitMix64.Stream(seed, 2);
        return prompts.Select(p => new CompletionText(p, Demonstration(p, errorRate, rng))).ToArray();
    }

    /// <summary>
    /// Preference pairs labelled by the gold reward: two demonstrations at <paramref name="errorRate"/>; when their gold
    /// rewards tie, one more character of the second is corrupted (or the first becomes the answer, when nothing of it
    /// is right); the higher gold reward is chosen. Every pair has <c>gold(chosen) &gt; gold(rejected)</c>.
    /// </summary>
    public IReadOnlyList<PreferenceText> PreferencePairs(IReadOnlyList<string> prompts, double errorRate, long seed)
    {
        var rng = SplitMix64.Stream(seed, 3);
        var pairs = new PreferenceText[prompts.Count];
        for (var k = 0; k < prompts.Count; k++)
        {
            var p = prompts[k];
            var a = Demonstration(p, errorRate, rng);
            var b = Demonstration(p, errorRate, rng);
            if (GoldReward(p, a, true) == GoldReward(p, b, true))
            {
                var answer = Answer(p);
                var right = Enumerable.Range(0, answer.Length).Where(i => b[i] == answer[i]).ToArray();
                if (right.Length == 0) a = answer;
                else
                {
                    var chars = b.ToCharArray();
                    var i = right[rng.NextInt(right.Length)];
                    chars[i] = Corrupt(chars[i], rng);
                    b = new string(chars);
                }
            }
            pairs[k] = GoldReward(p, a, true) > GoldReward(p, b, true) ? new PreferenceText(p, a, b) : new PreferenceText(p, b, a);
        }
        return pairs;
    }

    /// <summary>A digit other than <paramref name="digit"/>, uniformly.</summary>
    private static char Corrupt(char digit, SplitMix64 rng) => (char)('0' + ((digit - '0') + 1 + rng.NextInt(9)) % 10);

    /// <summary>A string of <paramref name="length"/> uniform digits (a leading zero allowed when <paramref name="leadingZero"/>).</summary>
    protected static string Digits(SplitMix64 rng, int length, bool leadingZero)
    {
        var c = new char[length];
        for (var i = 0; i < length; i++)
            c[i] = (char)('0' + (i == 0 && !leadingZero && length > 1 ? 1 + rng.NextInt(9) : rng.NextInt(10)));
        return new string(c);
    }

    /// <summary>The operand of a one-operand prompt <c>DIGITS=</c>; throws for any other form.</summary>
    protected string Operand(string prompt)
    {
        if (prompt.Length < 2 || prompt[^1] != '=' || !prompt[..^1].All(char.IsAsciiDigit))
            throw new ArgumentException($"task {Name}: prompt \"{prompt}\" is not of the form DIGITS= (for example \"3141=\")", nameof(prompt));
        return prompt[..^1];
    }
}

/// <summary>Tasks whose prompt is one digit string <c>DIGITS=</c>, any digit anywhere (<c>Σ_L 10^L</c> prompts).</summary>
public abstract class DigitStringTask(int minDigits, int maxDigits) : SyntheticTask(minDigits, maxDigits)
{
    /// <inheritdoc />
    public override double PromptSpace => Enumerable.Range(MinDigits, MaxDigits - MinDigits + 1).Sum(l => Math.Pow(10, l));

    /// <inheritdoc />
    protected override string NewPrompt(SplitMix64 rng) => Digits(rng, rng.NextInt(MinDigits, MaxDigits), leadingZero: true) + "=";
}

/// <summary><c>sort</c>: the digits in ascending order (<c>"3141=" → "1134"</c>).</summary>
public sealed class SortTask(int minDigits, int maxDigits) : DigitStringTask(minDigits, maxDigits)
{
    /// <inheritdoc />
    public override string Name => "sort";
    /// <inheritdoc />
    public override string Description => "sort the digits ascending: \"3141=\" → \"1134\"";
    /// <inheritdoc />
    public override string Answer(string prompt) => new(Operand(prompt).Order().ToArray());
}

/// <summary><c>reverse</c>: the digits reversed (<c>"3141=" → "1413"</c>).</summary>
public sealed class ReverseTask(int minDigits, int maxDigits) : DigitStringTask(minDigits, maxDigits)
{
    /// <inheritdoc />
    public override string Name => "reverse";
    /// <inheritdoc />
    public override string Description => "reverse the digits: \"3141=\" → \"1413\"";
    /// <inheritdoc />
    public override string Answer(string prompt) => new(Operand(prompt).Reverse().ToArray());
}

/// <summary><c>copy</c>: the digits unchanged (<c>"3141=" → "3141"</c>), the easiest task.</summary>
public sealed class CopyTask(int minDigits, int maxDigits) : DigitStringTask(minDigits, maxDigits)
{
    /// <inheritdoc />
    public override string Name => "copy";
    /// <inheritdoc />
    public override string Description => "copy the digits: \"3141=\" → \"3141\"";
    /// <inheritdoc />
    public override string Answer(string prompt) => Operand(prompt);
}

/// <summary><c>addition</c>: the decimal sum of two operands without leading zeros (<c>"12+345=" → "357"</c>).</summary>
public sealed class AdditionTask(int minDigits, int maxDigits) : SyntheticTask(minDigits, maxDigits)
{
    /// <inheritdoc />
    public override string Name => "addition";
    /// <inheritdoc />
    public override string Description => "add two numbers: \"12+345=\" → \"357\"";

    /// <inheritdoc />
    public override double PromptSpace
    {
        get
        {
            var operands = Enumerable.Range(MinDigits, MaxDigits - MinDigits + 1).Sum(l => l == 1 ? 10.0 : 9 * Math.Pow(10, l - 1));
            return operands * operands;
        }
    }

    /// <inheritdoc />
    public override string Answer(string prompt)
    {
        var plus = prompt.IndexOf('+');
        if (plus <= 0 || prompt.Length < 4 || prompt[^1] != '=' || !IsNumber(prompt[..plus]) || !IsNumber(prompt[(plus + 1)..^1]))
            throw new ArgumentException($"task {Name}: prompt \"{prompt}\" is not of the form A+B= with two numbers of at most {MaxSupportedDigits} digits (for example \"12+345=\")", nameof(prompt));
        var sum = ulong.Parse(prompt[..plus], System.Globalization.CultureInfo.InvariantCulture)
                  + ulong.Parse(prompt[(plus + 1)..^1], System.Globalization.CultureInfo.InvariantCulture);
        return sum.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    protected override string NewPrompt(SplitMix64 rng) =>
        Digits(rng, rng.NextInt(MinDigits, MaxDigits), leadingZero: false) + "+" + Digits(rng, rng.NextInt(MinDigits, MaxDigits), leadingZero: false) + "=";

    private static bool IsNumber(string s) => s.Length is > 0 and <= MaxSupportedDigits && s.All(char.IsAsciiDigit);
}

/// <summary>The built-in synthetic tasks by name.</summary>
public static class SyntheticTasks
{
    /// <summary>The task names <c>data.task</c> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["sort", "reverse", "copy", "addition"];

    /// <summary>The task called <paramref name="name"/> with operands of <paramref name="minDigits"/>–<paramref name="maxDigits"/> digits.</summary>
    public static SyntheticTask Create(string name, int minDigits, int maxDigits) => name switch
    {
        "sort" => new SortTask(minDigits, maxDigits),
        "reverse" => new ReverseTask(minDigits, maxDigits),
        "copy" => new CopyTask(minDigits, maxDigits),
        "addition" => new AdditionTask(minDigits, maxDigits),
        _ => throw new ArgumentException($"data.task: unknown synthetic task '{name}'; expected one of {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>The task the data settings name (<c>data.task</c>, <c>data.task_min_digits</c>, <c>data.task_max_digits</c>).</summary>
    public static SyntheticTask From(Rlhf.Settings.DataSettings data) =>
        Create(data.Task ?? throw new ArgumentException("data.task: no synthetic task is set"), checked((int)data.TaskMinDigits), checked((int)data.TaskMaxDigits));
}
