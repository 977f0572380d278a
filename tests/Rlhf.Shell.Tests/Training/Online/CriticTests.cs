using Rlhf.Core.Models;
using Rlhf.Settings;
using Rlhf.Shell.Config;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Shell.Tests.Config;
using Rlhf.Shell.Training;
using Rlhf.Shell.Training.Online;
using Rlhf.Torch;
using Xunit;

namespace Rlhf.Shell.Tests.Training.Online;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// PPO's value model: where it starts (a named directory, else the policy's initial weights with a fresh score head) and which
/// positions its values come from (TRL PPOv2 <c>full_value[:, context_length − 1 : −1]</c>), against a plain forward.
/// </summary>
[Collection(MemoryCollection.Name)]
public class CriticTests
{
    private const long Pad = 257;

    private static RlhfConfig Load(params string[] overrides) =>
        ConfigLoader.Load(Path.Combine(TestPaths.Configs, "ppo.yaml"), overrides).Match(c => c, e => throw new Xunit.Sdk.XunitException(ConfigLoader.Format(e)));

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "rlhf-critic-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void A_critic_from_a_directory_gives_its_score_head_at_the_positions_before_each_response_token()
    {
        var dir = TempDir();
        try
        {
            var c = Load("critic.model_args.model_name_or_path=" + dir, "critic.strategy_args.strategy_name=deepspeed_train");
            using var scope = Torch.NewScope();
            using var saved = ModelInit.Random(RoleModels.Architecture(c.Model, ModelHead.Score), 7);
            HfModelDirectory.Save(dir, saved);
            using var policy = ModelInit.Random(RoleModels.Architecture(c.Model), 8);   // unused: the directory wins
            using var critic = Critic.Create(c, policy, 1, Device.Cpu, null);
            Assert.Contains(dir, critic.Source);

            // Two rows, left-padded prompts (ctx 3), right-padded responses (T 4).
            var prompts = Torch.From(new long[] { Pad, 10, 11, 20, 21, 22 }, 2, 3);
            var responses = Torch.From(new long[] { 40, 41, Pad, Pad, 50, 51, 52, 53 }, 2, 4);
            float[] values;
            using (Torch.NoGrad()) values = critic.Values(prompts, responses, Pad).ToArray<float>();
            Assert.Equal(8, values.Length);

            // Reference: the saved model's per-token scores over prompt + response, read at column ctx − 1 + t.
            var ids = Torch.Cat([prompts, responses], 1);
            var perToken = ScoreHead.PerToken(saved, Transformer.ForwardHidden(saved, ids, attentionMask: ids.Ne(Pad))).ToArray<float>();   // [2, 7]
            for (var b = 0; b < 2; b++)
                for (var t = 0; t < 4; t++)
                    Assert.Equal(perToken[b * 7 + 2 + t], values[b * 4 + t], 4);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_critic_without_a_directory_is_the_policys_trunk_with_a_fresh_score_head()
    {
        var c = Load();
        Assert.Null(RoleModels.CriticSource(c));
        using var scope = Torch.NewScope();
        using var policy = ModelInit.Random(RoleModels.Architecture(c.Model), 3);
        using var critic = Critic.Create(c, policy, 11, Device.Cpu, null);
        using var weights = critic.Layers.GatherWeights(critic.Engine);
        Assert.Equal(ModelHead.Score, weights.Config.Head);
        var trunk = 0;
        foreach (var (name, tensor) in weights.Tensors)
        {
            if (name == WeightNames.Score) continue;
            Assert.True(tensor.Equal(policy[name]), $"{name} differs from the policy's");
            trunk++;
        }
        Assert.Equal(policy.Tensors.Count() - 1, trunk);             // every policy tensor but the LM head
        Assert.False(weights.Tensors.Any(kv => kv.Key == WeightNames.LmHead(policy.Config)), "the LM head was kept");
        using var gen = new Generator(11);
        var fresh = Torch.Randn([1, policy.Config.HiddenSize], gen, ScalarType.Float32) * RoleModels.InitializerRange;
        Assert.True(weights[WeightNames.Score].AllClose(fresh, 0, 0), "the score head is not N(0, 0.02²) from the seed");
    }
}
