using Rlhf.Settings;
using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Training.Data;

/// <summary>Examples split into a training part and a held-out evaluation part.</summary>
public sealed record DataSplit<T>(IReadOnlyList<T> Train, IReadOnlyList<T> Eval);

/// <summary>
/// The texts a stage trains on, from the data section: a synthetic task (<c>data.task</c>: prompts from the seed,
/// imperfect demonstrations for SFT, gold-labelled pairs for the reward model and DPO) or a JSONL file
/// (<c>data.path</c>: the first <c>num_examples</c> lines, the last <c>round(n · eval_fraction)</c> of them held out).
/// Text only — call it before loading any model so a bad data section fails first; <see cref="PromptEncoder"/> tokenises.
/// </summary>
public static class TrainingData
{
    /// <summary>Prompts for the online algorithms.</summary>
    public static DataSplit<PromptText> Prompts(DataSettings data, long seed) => Load(data, seed,
        (task, prompts, _) => prompts.Select(p => new PromptText(p)).ToArray(),
        path => JsonlDataset.ReadPrompts(path, data));

    /// <summary>SFT examples: a task's imperfect demonstrations (<c>data.demonstration_error_rate</c>), or a file's prompt/completion or messages lines.</summary>
    public static DataSplit<CompletionText> Completions(DataSettings data, long seed) => Load(data, seed,
        (task, prompts, s) => task.Demonstrations(prompts, data.DemonstrationErrorRate, s),
        path => JsonlDataset.ReadCompletions(path, data));

    /// <summary>Preference pairs: a task's gold-labelled pairs of demonstrations, or a file's chosen/rejected lines.</summary>
    public static DataSplit<PreferenceText> Preferences(DataSettings data, long seed) => Load(data, seed,
        (task, prompts, s) => task.PreferencePairs(prompts, data.DemonstrationErrorRate, s),
        path => JsonlDataset.ReadPreferences(path, data));

    private static DataSplit<T> Load<T>(DataSettings data, long seed, Func<SyntheticTask, IReadOnlyList<string>, long, IReadOnlyList<T>> fromTask, Func<string, IReadOnlyList<T>> fromFile)
    {
        if ((data.Task is null) == (data.Path is null))
            throw new ArgumentException("data: set exactly one of data.task (a built-in synthetic task) and data.path (a JSONL file)");
        if (data.Task is not null)
        {
            var task = SyntheticTasks.From(data);
            var split = task.Split(data, seed);
            // The evaluation part draws its demonstrations from its own seed, so its noise is not the training part's.
            return new DataSplit<T>(fromTask(task, split.Train, seed), fromTask(task, split.Eval, ~seed));
        }
        var all = fromFile(data.Path!);
        var eval = (int)Math.Round(all.Count * data.EvalFraction, MidpointRounding.AwayFromZero);
        if (eval == all.Count)
            throw new ArgumentException($"data.eval_fraction: {data.EvalFraction} of the {all.Count} examples of {data.Path} leaves none to train on");
        return new DataSplit<T>(all.Take(all.Count - eval).ToArray(), all.Skip(all.Count - eval).ToArray());
    }
}
