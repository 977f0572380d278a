// Scopes and handle accounting: what a scope disposes, what escapes it, and exact live-tensor counts.
using Rlhf.Torch;

namespace Rlhf.Torch.Tests;

public class ScopeTests
{
    [Fact]
    public void A_scope_disposes_what_was_created_inside_it()
    {
        var baseline = Live.Baseline();
        Tensor a, b;
        using (var scope = Torch.NewScope())
        {
            a = Torch.Zeros([3]);
            b = a + 1;
            Assert.Equal(2, scope.Count);
            Assert.Equal(baseline + 2, Torch.LiveTensors);
            Assert.False(a.IsDisposed);
        }
        Assert.True(a.IsDisposed && b.IsDisposed);
        Assert.Equal(baseline, Torch.LiveTensors);
        Assert.Throws<ObjectDisposedException>(() => a.NumEl);
        Assert.Equal("Tensor(disposed)", a.ToString());
    }

    [Fact]
    public void Live_tensors_count_every_handle_exactly()
    {
        var baseline = Live.Baseline();
        using var scope = Torch.NewScope();
        var x = Torch.Arange(10).View(2, 5);                // arange + view
        Assert.Equal(baseline + 2, Torch.LiveTensors);
        var (v, i) = x.Max(1);                               // two results
        Assert.Equal(baseline + 4, Torch.LiveTensors);
        var parts = x.Split(2, 1);                           // three pieces
        Assert.Equal(3, parts.Length);
        Assert.Equal(baseline + 7, Torch.LiveTensors);
        x.Add_(1);                                           // in place: no new handle
        Assert.Equal(baseline + 7, Torch.LiveTensors);
        Assert.Equal(7, scope.Count);
        v.Dispose();
        Assert.Equal(baseline + 6, Torch.LiveTensors);
        Assert.Equal(6, scope.Count);
        GC.KeepAlive(i);
    }

    [Fact]
    public void Nested_scopes_dispose_innermost_first()
    {
        var baseline = Live.Baseline();
        using var outer = Torch.NewScope();
        var kept = Torch.Ones([2]);
        Tensor inner1;
        using (var inner = Torch.NewScope())
        {
            inner1 = kept * 2;
            Assert.Equal(1, inner.Count);
            Assert.Equal(1, outer.Count);
            using (var innermost = Torch.NewScope())
            {
                var t = inner1 + kept;
                Assert.Equal(1, innermost.Count);
                Assert.Equal(1, inner.Count);
                GC.KeepAlive(t);
            }
            Assert.Equal(baseline + 2, Torch.LiveTensors);
        }
        Assert.True(inner1.IsDisposed);
        Assert.False(kept.IsDisposed);
        Assert.Equal(baseline + 1, Torch.LiveTensors);
    }

    [Fact]
    public void Move_to_outer_hands_a_result_one_scope_out()
    {
        var baseline = Live.Baseline();
        Tensor result;
        using (var outer = Torch.NewScope())
        {
            using (var inner = Torch.NewScope())
            {
                var tmp = Torch.Ones([4]);
                result = (tmp * 3).MoveToOuter();
                Assert.Equal(1, inner.Count);
                Assert.Equal(1, outer.Count);
            }
            Assert.False(result.IsDisposed);
            Assert.Equal(baseline + 1, Torch.LiveTensors);
            Assert.Equal(new float[] { 3, 3, 3, 3 }, result.ToArray<float>());
        }
        Assert.True(result.IsDisposed);
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Moving_out_of_the_outermost_scope_leaves_the_caller_owning_it()
    {
        var baseline = Live.Baseline();
        Tensor t;
        using (Torch.NewScope()) t = Torch.Ones([2]).MoveToOuter();
        Assert.False(t.IsDisposed);
        Assert.Equal(baseline + 1, Torch.LiveTensors);
        t.Dispose();
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Detach_from_scope_survives_every_scope()
    {
        var baseline = Live.Baseline();
        Tensor t;
        using (Torch.NewScope())
        using (var inner = Torch.NewScope())
        {
            t = Torch.Ones([2]).DetachFromScope();
            Assert.Equal(0, inner.Count);
        }
        Assert.False(t.IsDisposed);
        Assert.Equal(2.0, t.Sum().DetachFromScope().Item());
        Assert.Equal(baseline + 2, Torch.LiveTensors); // t and the detached sum
        t.Dispose();
        Assert.Equal(baseline + 1, Torch.LiveTensors);
    }

    [Fact]
    public void Tensors_created_outside_any_scope_survive_until_disposed()
    {
        var baseline = Live.Baseline();
        var t = Torch.Full([3], 1.5);
        using (var scope = Torch.NewScope())
        {
            var u = t * 2; // inside: owned by the scope; t is not
            Assert.Equal(1, scope.Count);
            GC.KeepAlive(u);
        }
        Assert.False(t.IsDisposed);
        Assert.Equal(new[] { 1.5f, 1.5f, 1.5f }, t.ToArray<float>());
        Assert.Equal(baseline + 1, Torch.LiveTensors);
        t.Dispose();
        t.Dispose(); // twice is harmless
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Include_adopts_a_tensor_into_a_scope()
    {
        var baseline = Live.Baseline();
        var t = Torch.Ones([1]);
        using (var scope = Torch.NewScope())
        {
            Assert.Same(t, scope.Include(t));
            Assert.Equal(1, scope.Count);
        }
        Assert.True(t.IsDisposed);
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void A_tensor_disposed_early_is_released_once()
    {
        var baseline = Live.Baseline();
        var scope = Torch.NewScope();
        var a = Torch.Ones([1]);
        var b = Torch.Ones([1]);
        a.Dispose();
        Assert.Equal(baseline + 1, Torch.LiveTensors);
        Assert.Equal(1, scope.Count);
        scope.Dispose();
        scope.Dispose(); // twice is harmless
        Assert.True(b.IsDisposed);
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Grad_reads_and_multi_result_ops_register_with_the_scope()
    {
        var baseline = Live.Baseline();
        var x = T.D(1, 2).RequiresGrad_().DetachFromScope();
        using (Torch.NewScope())
        {
            (x * x).Sum().Backward();
            var g1 = x.Grad;
            var g2 = x.Grad;
            var (vals, idx) = x.Detach().TopK(1);
            var chunks = x.Detach().Chunk(2);
            var grads = Autograd.Grad([(x * 3).Sum()], [x]);
            GC.KeepAlive((g1, g2, vals, idx, chunks, grads));
        }
        x.ZeroGrad();
        Assert.Equal(baseline + 1, Torch.LiveTensors);
        x.Dispose();
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Scopes_are_per_thread()
    {
        var baseline = Live.Baseline();
        using var scope = Torch.NewScope();
        Tensor? fromOtherThread = null;
        var thread = new Thread(() => fromOtherThread = Torch.Ones([1]));
        thread.Start();
        thread.Join();
        Assert.Equal(0, scope.Count); // the other thread had no scope
        Assert.Equal(baseline + 1, Torch.LiveTensors);
        fromOtherThread!.Dispose();
        Assert.Equal(baseline, Torch.LiveTensors);
    }

    [Fact]
    public void Disposing_an_outer_scope_before_its_inner_one_leaves_no_dead_scope_current()
    {
        // Regression: after out-of-order disposal the dead outer scope became current again and silently
        // adopted (and kept alive forever) every tensor created afterwards on the thread.
        var baseline = Live.Baseline();
        var outer = Torch.NewScope();
        var inner = Torch.NewScope();
        var a = Torch.Ones([1]);
        var o = Torch.Ones([1]).MoveToOuter();
        outer.Dispose();
        Assert.True(o.IsDisposed);
        Assert.False(a.IsDisposed); // the inner scope still owns it
        inner.Dispose();
        Assert.True(a.IsDisposed);
        Assert.Equal(baseline, Torch.LiveTensors);

        var after = Torch.Ones([1]);
        Assert.Equal(0, outer.Count);
        Tensor moved;
        using (Torch.NewScope()) moved = Torch.Ones([1]).MoveToOuter();
        Assert.Equal(0, outer.Count);
        Assert.False(moved.IsDisposed);
        after.Dispose();
        moved.Dispose();
        Assert.Equal(baseline, Torch.LiveTensors);
    }
}
