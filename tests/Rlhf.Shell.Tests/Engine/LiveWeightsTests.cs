using Rlhf.Settings;
using Rlhf.Core.Models;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Generation;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Engine;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// The engine's live weights for a generator (one process): every published version equals <see cref="ZeroEngine.GatherFullWeights"/>
/// in the training dtype, the version follows the optimizer steps, shared mode hands out the engine's own storage, snapshot
/// mode keeps a held version intact while training continues and allocates nothing per step, and a
/// <see cref="PagedGenerator"/> fed the live view generates exactly what it generates from a copy.
/// </summary>
[Collection(MemoryCollection.Name)]
public class LiveWeightsTests
{
    private static readonly ModelConfig Tiny = ModelConfig.Llama(64, 32, 48, 2, 4, kvHeads: 2);

    private static ZeroEngine Engine(int stage, int gas = 1) =>
        new(new TransformerLayers(Tiny, initStd: 0.2), TestEngines.Settings(stage, mb: 2, gas: gas, persistence: 40, lr: 0.05), null, seed: 9, gradientCheckpointing: true);

    /// <summary>One micro-step of next-token cross-entropy on a fixed batch.</summary>
    private static void MicroStep(ZeroEngine e, int salt)
    {
        using var scope = Torch.NewScope();
        using var g = new Generator((ulong)(100 + salt));
        var ids = Torch.Randint(0, Tiny.VocabSize, [2, 6], g);
        var logits = e.Forward(ids);                                             // [2, 6, V]
        var loss = Functional.CrossEntropy(logits.Narrow(1, 0, 5).Reshape(-1, Tiny.VocabSize), ids.Narrow(1, 1, 5).Reshape(-1));
        e.Backward(loss);
        e.Step();
    }

    private static void AssertEqualsGathered(ZeroEngine e, WeightsLease lease, string what)
    {
        using var scope = Torch.NewScope();
        var gathered = e.GatherFullWeights(ScalarType.Float32);
        Assert.Equal(gathered.Select(kv => kv.Key), lease.Weights.Select(kv => kv.Key));
        for (var j = 0; j < gathered.Count; j++)
            Assert.True(lease.Weights[j].Value.Equal(gathered[j].Value), $"{what}: {gathered[j].Key} differs from GatherFullWeights");
    }

    public static readonly TheoryData<int, LiveWeightsMode> Cases = new()
    {
        { 0, LiveWeightsMode.Shared }, { 2, LiveWeightsMode.Shared }, { 3, LiveWeightsMode.Shared },
        { 0, LiveWeightsMode.Snapshot }, { 1, LiveWeightsMode.Snapshot }, { 3, LiveWeightsMode.Snapshot },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_published_version_equals_the_gathered_weights_and_counts_optimizer_steps(int stage, LiveWeightsMode mode)
    {
        using var e = Engine(stage, gas: 2);
        e.EnableLiveWeights(mode);
        byte[]? before = null;
        for (var step = 0; step <= 3; step++)
        {
            using (var lease = e.AcquireWeights())
            {
                Assert.Equal(step, lease.Version);
                Assert.Equal(e.GlobalSteps, lease.Version);
                AssertEqualsGathered(e, lease, $"stage {stage} {mode} version {step}");
                var now = lease.Weights[1].Value.Float().ToArray<float>().SelectMany(BitConverter.GetBytes).ToArray();
                if (before is not null) Assert.NotEqual(before, now); // training changed what is published
                before = now;
            }
            MicroStep(e, 2 * step);
            using (var mid = e.AcquireWeights()) Assert.Equal(step, mid.Version); // a micro-step is not an optimizer step
            MicroStep(e, 2 * step + 1);
        }
    }

    [Fact]
    public void Shared_mode_hands_out_the_engines_own_storage_and_refuses_to_step_under_a_reader()
    {
        using var e = Engine(0);
        e.EnableLiveWeights(LiveWeightsMode.Shared);
        var bytes = Torch.LiveBytes;
        var lease = e.AcquireWeights();
        Assert.Equal(bytes, Torch.LiveBytes);                                   // views: not one byte copied
        var error = Assert.Throws<InvalidOperationException>(() => MicroStep(e, 0));
        Assert.Contains("release them before Step", error.Message);
        lease.Dispose();
        using (var scope = Torch.NewScope())
        using (Torch.NoGrad())
        {
            // Writing through the engine's working parameters shows in the next lease: it is the same storage.
            using var again = e.AcquireWeights();
            var w = again.Weights[0].Value;
            var before = w.Clone();
            e.State.WorkingParameters.Narrow(0, 0, 1).Add_(Torch.Ones([1]));
            Assert.False(w.Equal(before));
        }
    }

    [Fact]
    public void Snapshot_mode_keeps_a_held_version_while_training_continues_without_allocating_per_step()
    {
        using var e = Engine(2);
        e.EnableLiveWeights(LiveWeightsMode.Snapshot);
        MicroStep(e, 0);
        using var held = e.AcquireWeights();
        Assert.Equal(1, held.Version);
        using var copy = Torch.NewScope();
        var values = held.Weights.Select(kv => kv.Value.Clone()).ToArray();
        MicroStep(e, 1);                                  // publishes version 2 into the other buffer
        var bytes = Torch.LiveBytes;
        for (var s = 2; s < 6; s++)
        {
            MicroStep(e, s);                              // the held buffer is skipped, no new one is made
            Assert.Equal(bytes, Torch.LiveBytes);
        }
        for (var j = 0; j < values.Length; j++) Assert.True(held.Weights[j].Value.Equal(values[j]), $"{held.Weights[j].Key} changed under its reader");
        using var newest = e.AcquireWeights();
        Assert.True(newest.Version > held.Version);
        Assert.False(newest.Weights[1].Value.Equal(values[1]));
        Assert.Equal(4, e.Metrics()["engine/live_weights_skipped_publishes"]); // steps 3–6 found the back buffer held
    }

    [Fact]
    public void Explicit_publishing_over_three_buffers_keeps_two_held_versions_and_refuses_when_every_other_buffer_is_held()
    {
        using var e = Engine(0);
        e.EnableLiveWeights(LiveWeightsMode.Snapshot, snapshots: 3, publishOnStep: false);
        using var v0 = e.AcquireWeights();
        MicroStep(e, 0);
        using (var unchanged = e.AcquireWeights()) Assert.Equal(0, unchanged.Version);     // a step alone publishes nothing
        Assert.True(e.PublishWeights());
        using var v1 = e.AcquireWeights();
        Assert.Equal(1, v1.Version);
        AssertEqualsGathered(e, v1, "version 1");
        using var copy = Torch.NewScope();
        var values0 = v0.Weights.Select(kv => kv.Value.Clone()).ToArray();
        var values1 = v1.Weights.Select(kv => kv.Value.Clone()).ToArray();
        MicroStep(e, 1);
        Assert.True(e.PublishWeights());                  // the third buffer takes version 2
        using var v2 = e.AcquireWeights();
        Assert.Equal(2, v2.Version);
        AssertEqualsGathered(e, v2, "version 2");
        MicroStep(e, 2);
        Assert.False(e.PublishWeights());                 // v0 and v1 hold both buffers that are not current
        using (var still = e.AcquireWeights()) Assert.Equal(2, still.Version);
        for (var j = 0; j < values0.Length; j++)
        {
            Assert.True(v0.Weights[j].Value.Equal(values0[j]), $"{v0.Weights[j].Key} of version 0 changed under its reader");
            Assert.True(v1.Weights[j].Value.Equal(values1[j]), $"{v1.Weights[j].Key} of version 1 changed under its reader");
        }
        v0.Dispose();
        Assert.True(e.PublishWeights());                  // version 0's buffer is free again
        using var v3 = e.AcquireWeights();
        Assert.Equal(3, v3.Version);
    }

    [Fact]
    public async Task A_reader_thread_sees_whole_versions_in_order_while_the_trainer_steps()
    {
        using var e = Engine(1);
        e.EnableLiveWeights(LiveWeightsMode.Snapshot);
        var versions = new List<long>();
        using var stop = new CancellationTokenSource();
        using var firstRead = new ManualResetEventSlim();
        var reader = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var scope = Torch.NewScope();
                using var lease = e.AcquireWeights();
                versions.Add(lease.Version);
                _ = lease.Weights.Sum(kv => kv.Value.Sum().Item()); // read every tensor of the version
                firstRead.Set();
            }
        });
        Assert.True(firstRead.Wait(TimeSpan.FromSeconds(60)), "the reader thread never read a version");  // overlap is guaranteed, not left to scheduling
        for (var s = 0; s < 8; s++) MicroStep(e, s);
        stop.Cancel();
        await reader;
        Assert.NotEmpty(versions);
        Assert.True(versions.Zip(versions.Skip(1), (a, b) => a <= b).All(x => x), "versions went backwards");
        Assert.InRange(versions[^1], 0, 8);
    }

    [Theory]
    [InlineData(0, LiveWeightsMode.Shared)]
    [InlineData(3, LiveWeightsMode.Snapshot)]
    public void A_generator_fed_the_live_view_generates_what_it_generates_from_a_copy(int stage, LiveWeightsMode mode)
    {
        using var e = Engine(stage);
        e.EnableLiveWeights(mode);
        MicroStep(e, 0);
        var layers = new TransformerLayers(Tiny);
        int[][] prompts = [[1, 2, 3], [7, 8, 9, 10, 11]];
        var p = new SamplingParams { N = 2, Temperature = 0.8, MaxTokens = 12, Seed = 5 };
        IReadOnlyList<RequestOutput> live, copied;
        using (var lease = e.AcquireWeights())
        {
            var view = layers.LiveWeights(lease);
            using (var g = new PagedGenerator(view, new GenerationSettings())) live = g.Generate(prompts, p);
            using var scope = Torch.NewScope();
            using var copy = new ModelWeights(Tiny, lease.Weights.Select(kv => KeyValuePair.Create(kv.Key, kv.Value.Clone())));
            using (var g = new PagedGenerator(copy, new GenerationSettings())) copied = g.Generate(prompts, p);
        }
        for (var j = 0; j < prompts.Length; j++)
            for (var i = 0; i < 2; i++)
                Assert.Equal(copied[j].Outputs[i].TokenIds, live[j].Outputs[i].TokenIds);
        Assert.Equal(12, live[0].Outputs[0].TokenIds.Length);
    }
}
