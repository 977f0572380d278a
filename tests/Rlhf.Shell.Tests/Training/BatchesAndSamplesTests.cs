using Rlhf.Shell.Io.Tokenizers;
using Rlhf.Shell.Training.Data;
using Rlhf.Shell.Training.Rewards;
using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Tests.Training;

/// <summary>Epoch batching of a dataset, and reward samples built from generated ids.</summary>
public class BatchesAndSamplesTests
{
    [Fact]
    public void Each_epoch_is_a_fresh_seeded_permutation_cut_into_full_batches()
    {
        var items = Enumerable.Range(0, 10).ToArray();
        var batches = EpochBatches.Endless(items, 3, shuffle: true, seed: 9).Take(9).ToArray();   // 3 epochs of 3 batches
        Assert.All(batches, b => Assert.Equal(3, b.Count));
        var epochs = Enumerable.Range(0, 3).Select(e => batches.Skip(3 * e).Take(3).SelectMany(b => b).ToArray()).ToArray();
        foreach (var e in epochs) Assert.Equal(9, e.Distinct().Count());   // one example per epoch dropped (10 = 3·3 + 1)
        Assert.NotEqual(epochs[0], epochs[1]);
        Assert.Equal(batches.SelectMany(b => b), EpochBatches.Endless(items, 3, true, 9).Take(9).SelectMany(b => b));
        Assert.NotEqual(batches.SelectMany(b => b), EpochBatches.Endless(items, 3, true, 10).Take(9).SelectMany(b => b));
        Assert.Equal([3, 4, 5, 6, 7, 8, 0, 1, 2], EpochBatches.Endless(items, 3, shuffle: false, seed: 9).Skip(1).Take(3).SelectMany(b => b));   // file order; the 10th example dropped each epoch
        Assert.Contains("fewer than one batch", Assert.Throws<ArgumentException>(() => EpochBatches.Endless(items, 11, true, 1)).Message);
    }

    [Fact]
    public void Sample_from_ids_cuts_after_the_first_stop_and_decodes_without_specials()
    {
        var tok = new ByteTokenizer(260);
        int[] prompt = [ByteTokenizer.Bos, '3', '1', '='];
        var s = RewardSamples.FromIds("31=", prompt, ['1', '3', ByteTokenizer.Eos, '9', ByteTokenizer.Pad], tok);
        Assert.Equal("13", s.CompletionText);
        Assert.Equal(new[] { '1', '3', ByteTokenizer.Eos }, s.CompletionIds);
        Assert.True(s.FinishedWithStop);
        Assert.Equal(1.0, new SortTask(1, 6).GoldReward(s.PromptText, s.CompletionText, s.FinishedWithStop));

        var open = RewardSamples.FromIds("31=", prompt, ['1', '3', '3'], tok);
        Assert.False(open.FinishedWithStop);
        Assert.Equal("133", open.CompletionText);

        var custom = RewardSamples.FromIds("31=", prompt, ['1', '\n', '3'], tok, stopIds: ['\n']);
        Assert.Equal("1", custom.CompletionText);
        Assert.True(custom.FinishedWithStop);
    }
}
