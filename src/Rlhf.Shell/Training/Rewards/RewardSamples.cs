using Rlhf.Shell.Io.Tokenizers;

namespace Rlhf.Shell.Training.Rewards;

/// <summary>Builds <see cref="RewardSample"/>s from generated ids, the way every reward source expects them.</summary>
public static class RewardSamples
{
    /// <summary>
    /// A sample from a prompt and the ids a generator produced: the completion is cut after its first stop token
    /// (<paramref name="stopIds"/>, the tokenizer's EOS when none are given — TRL's truncation keeps the stop token
    /// itself), padding after it is ignored, and the text is decoded from the ids before the stop, special tokens dropped.
    /// </summary>
    public static RewardSample FromIds(string promptText, int[] promptIds, ReadOnlySpan<int> generated, ITokenizer tokenizer, IReadOnlyCollection<int>? stopIds = null)
    {
        var stops = stopIds ?? (tokenizer.EosId is int eos ? [eos] : []);
        var end = -1;
        for (var i = 0; i < generated.Length && end < 0; i++)
            if (stops.Contains(generated[i])) end = i;
        var stopped = end >= 0;
        var kept = stopped ? generated[..(end + 1)] : generated;
        if (!stopped && tokenizer.PadId is int pad)
        {
            var n = kept.Length;
            while (n > 0 && kept[n - 1] == pad) n--;   // right padding of a batch row that never stopped
            kept = kept[..n];
        }
        var text = tokenizer.Decode(stopped ? kept[..^1] : kept, skipSpecialTokens: true);
        return new RewardSample(promptText, promptIds, text, kept.ToArray(), stopped);
    }
}
