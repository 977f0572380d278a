using Rlhf.Core.Models;
using Rlhf.Torch;

namespace Rlhf.Core.Tests.Models;

using Torch = Rlhf.Torch.Torch;

public class ScoreHeadTests
{
    [Fact]
    public void Last_token_index_handles_left_and_right_padding()
    {
        using var scope = Torch.NewScope();
        var mask = Torch.From(new long[] { 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1 }, 3, 4);
        Assert.Equal(new long[] { 3, 2, 3 }, ScoreHead.LastTokenIndex(mask).ToArray<long>());
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("neox")]
    [InlineData("gpt2")]
    public void Reward_at_last_token_is_the_same_padded_or_not(string variant)
    {
        using var scope = Torch.NewScope();
        var config = TinyModels.Config(variant) with { Head = ModelHead.Score };
        using var w = TinyModels.Weights(config);
        Assert.Null(w.TryGet("lm_head.weight"));
        Assert.Equal([1, 16], w[WeightNames.Score].Shape);
        long[] seq = [5, 2, 8];
        var single = ScoreHead.AtLastToken(w, Transformer.ForwardHidden(w, Torch.From(seq, 1, 3)), Torch.Ones([1, 3], ScalarType.Int64));
        var ids = Torch.From(new long[] { 0, 0, 5, 2, 8, 5, 2, 8, 0, 0 }, 2, 5);
        var mask = Torch.From(new long[] { 0, 0, 1, 1, 1, 1, 1, 1, 0, 0 }, 2, 5);
        var batched = ScoreHead.AtLastToken(w, Transformer.ForwardHidden(w, ids, attentionMask: mask), mask);
        Assert.Equal([2], batched.Shape);
        var s = single.Item();
        var b = batched.ToArray<double>();
        Assert.Equal(s, b[0], 1e-9);
        Assert.Equal(s, b[1], 1e-9);
        // and it is the hidden state at the last token dotted with score.weight
        var hidden = Transformer.ForwardHidden(w, Torch.From(seq, 1, 3)).Select(1, 2).Squeeze(0).ToArray<double>();
        var sw = w[WeightNames.Score].ToArray<double>();
        Assert.Equal(hidden.Zip(sw, (x, y) => x * y).Sum(), s, 1e-9);
        Assert.Throws<InvalidOperationException>(() => Transformer.Forward(w, Torch.From(seq, 1, 3)));
    }

    [Fact]
    public void Per_token_scores_have_shape_b_t()
    {
        using var scope = Torch.NewScope();
        using var w = TinyModels.Weights(TinyModels.Config("qwen2") with { Head = ModelHead.Score });
        var h = Transformer.ForwardHidden(w, TinyModels.Ids([1, 2, 3, 4, 5, 6], 2, 3));
        var s = ScoreHead.PerToken(w, h);
        Assert.Equal([2, 3], s.Shape);
        Assert.True(ScoreHead.AtLastToken(w, h, Torch.Ones([2, 3], ScalarType.Int64)).Equal(s.Select(1, 2)));
    }
}
