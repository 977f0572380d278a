// Seeded generators: every random op is reproducible from a seed and replayable from a saved state.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class GeneratorTests
{
    /// <summary>One draw of every random op the binding has, from one generator, as float64 values.</summary>
    private static double[] DrawAll(Generator g)
    {
        using var scope = Torch.NewScope();
        var probs = T.D(new double[] { 0.1, 0.2, 0.3, 0.4, 0.25, 0.25, 0.25, 0.25 }, 2, 4);
        var parts = new[]
        {
            Torch.Randn([5], g, ScalarType.Float64),
            Torch.Rand([5], g, ScalarType.Float64),
            Torch.Randint(0, 1000, [5], g).Double(),
            Torch.Randperm(7, g).Double(),
            Functional.Multinomial(probs, 3, replacement: true, g).Double().Flatten(),
            Functional.Dropout(Torch.Ones([16], ScalarType.Float64), 0.5, training: true, g),
        };
        return parts.SelectMany(Near.Values).ToArray();
    }

    [Fact]
    public void Same_seed_gives_the_same_draws()
    {
        using var g1 = new Generator(1234);
        using var g2 = new Generator(1234);
        Assert.Equal(DrawAll(g1), DrawAll(g2));
        Assert.Equal(DrawAll(g1), DrawAll(g2)); // the streams stay in step
    }

    [Fact]
    public void Different_seeds_give_different_draws()
    {
        using var g1 = new Generator(1);
        using var g2 = new Generator(2);
        using var scope = Torch.NewScope();
        Assert.NotEqual(Torch.Randn([8], g1).ToArray<float>(), Torch.Randn([8], g2).ToArray<float>());
        Assert.NotEqual(Torch.Rand([8], g1).ToArray<float>(), Torch.Rand([8], g2).ToArray<float>());
        Assert.NotEqual(Torch.Randint(0, 1 << 30, [8], g1).ToArray<long>(), Torch.Randint(0, 1 << 30, [8], g2).ToArray<long>());
        var ones = Torch.Ones([64]);
        Assert.NotEqual(Functional.Dropout(ones, 0.5, true, g1).ToArray<float>(), Functional.Dropout(ones, 0.5, true, g2).ToArray<float>());
        var p = Torch.Ones([1000]);
        Assert.NotEqual(Functional.Multinomial(p, 10, false, g1).ToArray<long>(), Functional.Multinomial(p, 10, false, g2).ToArray<long>());
    }

    [Fact]
    public void Successive_draws_from_one_generator_differ()
    {
        using var g = new Generator(5);
        using var scope = Torch.NewScope();
        Assert.NotEqual(Torch.Randn([8], g).ToArray<float>(), Torch.Randn([8], g).ToArray<float>());
    }

    [Fact]
    public void Saved_state_replays_the_stream()
    {
        using var g = new Generator(77);
        using var scope = Torch.NewScope();
        Torch.Randn([3], g); // advance a little first
        var state = g.GetState();
        Assert.Equal(ScalarType.UInt8, state.Dtype);
        var first = DrawAll(g);
        g.SetState(state);
        Assert.Equal(first, DrawAll(g));
    }

    [Fact]
    public void A_state_moves_between_generators()
    {
        using var a = new Generator(10);
        using var b = new Generator(99);
        using var scope = Torch.NewScope();
        b.SetState(a.GetState());
        Assert.Equal(DrawAll(a), DrawAll(b));
    }

    [Fact]
    public void Setting_the_seed_restarts_the_stream()
    {
        using var g = new Generator(42);
        Assert.Equal(42UL, g.Seed);
        var first = DrawAll(g);
        DrawAll(g);
        g.Seed = 42;
        Assert.Equal(first, DrawAll(g));
        g.Seed = 43;
        Assert.Equal(43UL, g.Seed);
        Assert.NotEqual(first, DrawAll(g));
    }

    [Fact]
    public void Manual_seed_makes_the_global_generator_reproducible()
    {
        using var scope = Torch.NewScope();
        Torch.ManualSeed(2024);
        var a = Torch.Randn([6]).ToArray<float>();
        Torch.ManualSeed(2024);
        Assert.Equal(a, Torch.Randn([6]).ToArray<float>());
    }

    [Fact]
    public void Dropout_keeps_or_zeroes_and_rescales_the_kept()
    {
        using var g = new Generator(8);
        using var scope = Torch.NewScope();
        var x = Torch.Full([4000], 3.0, ScalarType.Float64);
        var y = Functional.Dropout(x, 0.25, training: true, g).ToArray<double>();
        Assert.All(y, v => Assert.True(v == 0 || Math.Abs(v - 4.0) < 1e-12, $"{v} is neither 0 nor 3/(1-0.25)"));
        var kept = y.Count(v => v != 0) / 4000.0;
        Assert.InRange(kept, 0.72, 0.78);
        Assert.True(Functional.Dropout(x, 0.25, training: false, g).Equal(x));
        Assert.True(Functional.Dropout(x, 0.0, training: true, g).Equal(x));
        Assert.Throws<TorchException>(() => Functional.Dropout(x, 1.5, training: true, g));
    }

    [Fact]
    public void Multinomial_never_draws_a_zero_weight()
    {
        using var g = new Generator(3);
        using var scope = Torch.NewScope();
        var probs = T.D(new double[] { 0, 1, 0, 3, 2, 0, 0, 0 }, 2, 4);
        var s = Functional.Multinomial(probs, 50, replacement: true, g);
        Assert.Equal(new long[] { 2, 50 }, s.Shape);
        var v = s.ToArray<long>();
        Assert.All(v.Take(50), i => Assert.Contains(i, new long[] { 1, 3 }));
        Assert.All(v.Skip(50), i => Assert.Equal(0L, i));
        // Without replacement every index appears once.
        var perm = Functional.Multinomial(Torch.Ones([6]), 6, replacement: false, g).ToArray<long>();
        Assert.Equal(new long[] { 0, 1, 2, 3, 4, 5 }, perm.Order());
    }
}
