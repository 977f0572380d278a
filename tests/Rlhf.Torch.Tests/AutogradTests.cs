// Autograd: backward (with a gradient, retained graphs, accumulation), grad mode, detach, autograd.grad.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class AutogradTests
{
    [Fact]
    public void Leaves_and_recorded_results()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2);
        Assert.False(x.RequiresGrad);
        Assert.True(x.IsLeaf);
        x.RequiresGrad_();
        Assert.True(x.RequiresGrad);
        var y = x * 2;
        Assert.True(y.RequiresGrad);
        Assert.False(y.IsLeaf);
        Assert.True(y.HasGradFn);
        Assert.False(x.HasGradFn);
        Assert.Null(x.Grad);
        x.RequiresGrad = false;
        Assert.False(x.RequiresGrad);
    }

    [Fact]
    public void Backward_of_a_scalar_fills_leaf_grads()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2, 3).RequiresGrad_();
        var w = T.D(4, 5, 6).RequiresGrad_();
        (x * w).Sum().Backward();
        Assert.Equal(new double[] { 4, 5, 6 }, x.Grad!.ToArray<double>());
        Assert.Equal(new double[] { 1, 2, 3 }, w.Grad!.ToArray<double>());
    }

    [Fact]
    public void Backward_with_a_gradient_argument_is_a_vector_jacobian_product()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2, 3).RequiresGrad_();
        var y = x * x; // dy/dx = diag(2x)
        y.Backward(T.D(1, 0.5, -1));
        Assert.Equal(new double[] { 2, 2, -6 }, x.Grad!.ToArray<double>());
        var z = T.D(1, 2).RequiresGrad_() * 3;
        var e = Assert.Throws<TorchException>(() => z.Backward()); // non-scalar without a gradient
        Assert.Contains("scalar", e.Message);
    }

    [Fact]
    public void A_second_backward_needs_retain_graph()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        var y = x.Exp().Sum(); // exp saves its result for backward
        y.Backward(retainGraph: true);
        y.Backward();
        Near.Equal(new[] { 2 * Math.E, 2 * Math.Exp(2) }, x.Grad!, 1e-12);

        var y2 = x.Exp().Sum();
        y2.Backward();
        var e = Assert.Throws<TorchException>(() => y2.Backward());
        Assert.Contains("second time", e.Message);
        Assert.Equal(1.0, T.D(1).Item()); // the process goes on
    }

    [Fact]
    public void Grads_accumulate_across_backwards_until_zeroed()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        (x * 3).Sum().Backward();
        (x * x).Sum().Backward();
        Assert.Equal(new double[] { 5, 7 }, x.Grad!.ToArray<double>()); // 3 + 2x
        x.ZeroGrad(setToNone: false);
        Assert.Equal(new double[] { 0, 0 }, x.Grad!.ToArray<double>());
        (x * 2).Sum().Backward();
        Assert.Equal(new double[] { 2, 2 }, x.Grad!.ToArray<double>());
        x.ZeroGrad();
        Assert.Null(x.Grad);
        (x * 4).Sum().Backward();
        Assert.Equal(new double[] { 4, 4 }, x.Grad!.ToArray<double>());
    }

    [Fact]
    public void Grad_can_be_set_and_each_read_is_a_new_handle()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        x.Grad = T.D(0.5, 0.25);
        var g1 = x.Grad!;
        var g2 = x.Grad!;
        Assert.NotSame(g1, g2);
        g1.Mul_(2); // the handles share the grad's storage
        Assert.Equal(new double[] { 1, 0.5 }, g2.ToArray<double>());
        x.Grad = null;
        Assert.Null(x.Grad);
    }

    [Fact]
    public void Retain_grad_keeps_a_non_leaf_gradient()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        var h = (x * 3).RetainGrad();
        var h2 = x * 5;
        (h * h + h2).Sum().Backward();
        Assert.Equal(new double[] { 6, 12 }, h.Grad!.ToArray<double>()); // 2h
        Assert.Null(h2.Grad);
    }

    [Fact]
    public void No_grad_records_nothing_and_restores_the_previous_mode()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        Assert.True(Torch.IsGradEnabled);
        Tensor y;
        using (Torch.NoGrad())
        {
            Assert.False(Torch.IsGradEnabled);
            y = x * 2;
            using (Torch.GradEnabled(true))
            {
                Assert.True(Torch.IsGradEnabled);
                Assert.True((x * 2).HasGradFn);
            }
            Assert.False(Torch.IsGradEnabled);
            using (Torch.NoGrad()) Assert.False(Torch.IsGradEnabled);
            Assert.False(Torch.IsGradEnabled);
        }
        Assert.True(Torch.IsGradEnabled);
        Assert.False(y.HasGradFn);
        Assert.False(y.RequiresGrad);
        Assert.True((x * 2).HasGradFn);
        using (Torch.GradEnabled(false)) Assert.False((x * 2).RequiresGrad);
        Assert.True(Torch.IsGradEnabled);
    }

    [Fact]
    public void Detach_cuts_the_graph_but_shares_storage()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        var y = x * 2;
        var d = y.Detach();
        Assert.False(d.RequiresGrad);
        Assert.False(d.HasGradFn);
        var z = (d * x).Sum(); // d is a constant here
        z.Backward();
        Assert.Equal(new double[] { 2, 4 }, x.Grad!.ToArray<double>());
        using (Torch.NoGrad()) d.Fill_(9);
        Assert.Equal(new double[] { 9, 9 }, y.ToArray<double>());
    }

    [Fact]
    public void Autograd_grad_over_several_inputs()
    {
        using var scope = Torch.NewScope();
        var a = T.D(1, 2).RequiresGrad_();
        var b = T.D(3, 4).RequiresGrad_();
        var f = (a * b + a * a).Sum(); // df/da = b + 2a, df/db = a
        var g = Autograd.Grad([f], [a, b]);
        Assert.Equal(2, g.Length);
        Assert.Equal(new double[] { 5, 8 }, g[0]!.ToArray<double>());
        Assert.Equal(new double[] { 1, 2 }, g[1]!.ToArray<double>());
        Assert.Null(a.Grad); // autograd.grad does not accumulate into .grad
    }

    [Fact]
    public void Autograd_grad_with_grad_outputs_and_several_outputs()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        var y1 = x * 3;
        var y2 = x * x;
        var g = Autograd.Grad([y1, y2], [x], [T.D(1, 1), T.D(0.5, 2)]);
        Assert.Equal(new double[] { 3 + 1, 3 + 8 }, g[0]!.ToArray<double>()); // 3 + 0.5·2x, 3 + 2·2x
    }

    [Fact]
    public void Autograd_grad_needs_one_grad_output_per_output()
    {
        // Regression: a short gradOutputs list made the shim read past the end of the handle array.
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        var e = Assert.Throws<ArgumentException>(() => Autograd.Grad([x * 3, x * x], [x], [T.D(1, 1)]));
        Assert.Contains("gradOutputs", e.Message);
    }

    [Fact]
    public void Create_graph_retains_the_graph_unless_told_otherwise()
    {
        // As in torch, retain_graph defaults to create_graph: a gradient penalty can use the graph twice.
        using var scope = Torch.NewScope();
        var x = T.D(0.5, -1).RequiresGrad_();
        var y = x.Exp().Sum();
        var g = Autograd.Grad([y], [x], createGraph: true)[0]!;   // eˣ
        (y + g.Pow(2).Sum()).Backward();                          // d/dx (Σ eˣ + Σ e²ˣ) = eˣ + 2e²ˣ
        Near.Equal(new[] { Math.Exp(0.5) + 2 * Math.Exp(1), Math.Exp(-1) + 2 * Math.Exp(-2) }, x.Grad!, 1e-12);

        var z = T.D(2).RequiresGrad_();
        var w = z.Exp().Sum();
        w.Backward(createGraph: true);
        w.Backward(); // the first backward kept the graph
        Near.Equal(2 * Math.Exp(2), z.Grad!.Item(), 1e-9);
        z.ZeroGrad();

        var u = x.Exp().Sum();
        Autograd.Grad([u], [x], createGraph: true, retainGraph: false);
        Assert.Throws<TorchException>(() => u.Backward()); // an explicit false still frees it
        x.ZeroGrad();
    }

    [Fact]
    public void Autograd_grad_reports_an_unused_input_as_null_when_allowed()
    {
        using var scope = Torch.NewScope();
        var a = T.D(1, 2).RequiresGrad_();
        var unused = T.D(3, 4).RequiresGrad_();
        var f = (a * a).Sum();
        var g = Autograd.Grad([f], [a, unused], retainGraph: true, allowUnused: true);
        Assert.Equal(new double[] { 2, 4 }, g[0]!.ToArray<double>());
        Assert.Null(g[1]);
        var e = Assert.Throws<TorchException>(() => Autograd.Grad([f], [a, unused]));
        Assert.Contains("not have been used", e.Message);
    }

    [Fact]
    public void Create_graph_gives_second_derivatives()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2, 3).RequiresGrad_();
        var y = x.Pow(3).Sum();
        var g = Autograd.Grad([y], [x], createGraph: true)[0]!;
        Assert.Equal(new double[] { 3, 12, 27 }, g.ToArray<double>()); // 3x²
        Assert.True(g.RequiresGrad);
        var h = Autograd.Grad([g.Sum()], [x])[0]!;
        Assert.Equal(new double[] { 6, 12, 18 }, h.ToArray<double>()); // 6x

        // the same through Backward(createGraph): the grad itself is differentiable
        var z = T.D(2).RequiresGrad_();
        z.Pow(4).Sum().Backward(createGraph: true);
        var dz = z.Grad!;
        Assert.Equal(32.0, dz.Item()); // 4z³
        Assert.True(dz.HasGradFn);
        var second = Autograd.Grad([dz.Sum()], [z])[0]!;
        Assert.Equal(48.0, second.Item()); // 12z²
        z.ZeroGrad(); // break the grad ↔ graph reference cycle
    }

    [Fact]
    public void In_place_changes_to_a_saved_tensor_are_caught()
    {
        using var scope = Torch.NewScope();
        var x = T.D(1, 2).RequiresGrad_();
        var y = x.Exp();
        var s = y.Sum();
        using (Torch.NoGrad()) y.Mul_(2);
        var e = Assert.Throws<TorchException>(() => s.Backward());
        Assert.Contains("inplace operation", e.Message);
        Assert.Throws<TorchException>(() => x.Add_(1)); // a leaf that requires grad cannot change in place
    }
}
