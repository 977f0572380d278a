using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Training.Data;

/// <summary>
/// Batches over a dataset, epoch after epoch, as the trainers' data loaders draw them (TRL: a shuffled
/// <c>DataLoader</c> with <c>drop_last=True</c>, repeated while episodes remain): each epoch is a permutation of the
/// examples (a seeded Fisher–Yates shuffle, a new one every epoch, when <c>data.shuffle</c>; file order otherwise), cut into
/// full batches; the remainder of an epoch that does not fill a batch is dropped.
/// </summary>
public static class EpochBatches
{
    /// <summary>
    /// An endless sequence of batches of <paramref name="batchSize"/> examples from <paramref name="items"/>; the same
    /// seed gives the same batches on every machine.
    /// </summary>
    public static IEnumerable<IReadOnlyList<T>> Endless<T>(IReadOnlyList<T> items, int batchSize, bool shuffle, long seed)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "a batch holds at least one example");
        if (items.Count < batchSize)
            throw new ArgumentException($"the dataset has {items.Count} examples, fewer than one batch of {batchSize}; add examples (data.num_examples) or lower the batch size");
        return Iterate(items, batchSize, shuffle, seed);
    }

    private static IEnumerable<IReadOnlyList<T>> Iterate<T>(IReadOnlyList<T> items, int batchSize, bool shuffle, long seed)
    {
        var rng = SplitMix64.Stream(seed, 4);
        var order = Enumerable.Range(0, items.Count).ToArray();
        while (true)
        {
            if (shuffle)
                for (var i = order.Length - 1; i > 0; i--)
                {
                    var j = rng.NextInt(i + 1);
                    (order[i], order[j]) = (order[j], order[i]);
                }
            for (var start = 0; start + batchSize <= order.Length; start += batchSize)
            {
                var batch = new T[batchSize];
                for (var k = 0; k < batchSize; k++) batch[k] = items[order[start + k]];
                yield return batch;
            }
        }
    }
}
