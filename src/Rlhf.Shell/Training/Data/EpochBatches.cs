using Rlhf.Shell.Training.Tasks;

namespace Rlhf.Shell.Training.Data;

/// <summary>
/// Batches over a dataset, epoch after epoch, as the trainers' data loaders draw them (TRL: a shuffled
/// <c>DataLoader</c> with <c>drop_last=True</c>, repeated while episodes remain): each epoch is a permutation of the
/// examples (a seeded Fisher–Yates shuffle when <c>data.shuffle</c>; file order otherwise), cut into full batches; the
/// remainder of an epoch that does not fill a batch is dropped. Epoch <c>e</c>'s order is a pure function of
/// (seed, e) — its own SplitMix64 stream, as PyTorch's <c>DistributedSampler</c> seeds each epoch with <c>seed + epoch</c>
/// — so a resumed run starts at any batch without replaying the ones before it.
/// </summary>
public static class EpochBatches
{
    /// <summary>
    /// An endless sequence of batches of <paramref name="batchSize"/> examples from <paramref name="items"/>, starting at
    /// batch <paramref name="skip"/> (counted from the first batch of epoch 0); the same seed gives the same batches on
    /// every machine.
    /// </summary>
    public static IEnumerable<IReadOnlyList<T>> Endless<T>(IReadOnlyList<T> items, int batchSize, bool shuffle, long seed, long skip = 0)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "a batch holds at least one example");
        if (items.Count < batchSize)
            throw new ArgumentException($"the dataset has {items.Count} examples, fewer than one batch of {batchSize}; add examples (data.num_examples) or lower the batch size");
        ArgumentOutOfRangeException.ThrowIfNegative(skip);
        return Iterate(items, batchSize, shuffle, seed, skip);
    }

    /// <summary>The order of the <paramref name="count"/> examples in epoch <paramref name="epoch"/>: a permutation of 0…count − 1 (identity without <paramref name="shuffle"/>).</summary>
    public static int[] Order(int count, bool shuffle, long seed, long epoch)
    {
        var order = Enumerable.Range(0, count).ToArray();
        if (!shuffle) return order;
        var rng = SplitMix64.Stream(seed, (4UL << 32) | unchecked((ulong)epoch));   // stream 4 of the seed, one sub-stream per epoch
        for (var i = order.Length - 1; i > 0; i--)
        {
            var j = rng.NextInt(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    private static IEnumerable<IReadOnlyList<T>> Iterate<T>(IReadOnlyList<T> items, int batchSize, bool shuffle, long seed, long skip)
    {
        var perEpoch = items.Count / batchSize;
        var epoch = skip / perEpoch;
        var first = (int)(skip % perEpoch);
        while (true)
        {
            var order = Order(items.Count, shuffle, seed, epoch);
            for (var b = first; b < perEpoch; b++)
            {
                var batch = new T[batchSize];
                for (var k = 0; k < batchSize; k++) batch[k] = items[order[b * batchSize + k]];
                yield return batch;
            }
            first = 0;
            epoch++;
        }
    }
}
