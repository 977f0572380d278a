using Rlhf.Torch;

namespace Rlhf.Core.Models;

using Torch = Rlhf.Torch.Torch;

/// <summary>Random initialisation of any family, deterministic by seed (tiny models for tests and the embedded default).</summary>
public static class ModelInit
{
    /// <summary>
    /// Fresh weights for <paramref name="config"/>: matrices ~ Normal(0, <paramref name="std"/>) (HF <c>initializer_range</c>
    /// 0.02), norm scales 1, biases 0, drawn in <see cref="ModelWeights.ExpectedShapes"/> order from one generator seeded
    /// with <paramref name="seed"/>, so equal seeds give equal weights. Tensors are detached from any scope: the
    /// caller disposes the result.
    /// </summary>
    public static ModelWeights Random(ModelConfig config, ulong seed, ScalarType dtype = ScalarType.Float32, double std = 0.02)
    {
        config.Validated();
        using var gen = new Generator(seed);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (Torch.NoGrad())
        {
            foreach (var spec in ModelWeights.ExpectedShapes(config))
            {
                using var scope = Torch.NewScope();
                var t = spec.Init switch
                {
                    WeightInit.Normal => (Torch.Randn(spec.Shape, gen, ScalarType.Float32) * std).To(dtype),
                    WeightInit.Ones => Torch.Ones(spec.Shape, dtype),
                    _ => Torch.Zeros(spec.Shape, dtype),
                };
                tensors.Add(KeyValuePair.Create(spec.Name, t.Contiguous().DetachFromScope()));
            }
        }
        return new ModelWeights(config, tensors);
    }
}
