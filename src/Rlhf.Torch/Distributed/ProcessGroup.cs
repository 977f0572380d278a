using Rlhf.Torch.Native;
using N = Rlhf.Torch.Native.Native;

namespace Rlhf.Torch.Distributed;

/// <summary>Reduction of a collective (c10d <c>ReduceOp</c>); there is no AVG: divide by the world size yourself.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum.</summary>
    Sum = 0,
    /// <summary>Element-wise maximum.</summary>
    Max = 1,
    /// <summary>Element-wise minimum.</summary>
    Min = 2,
    /// <summary>Element-wise product.</summary>
    Product = 3,
}

/// <summary>Which c10d backend a process group runs on.</summary>
public enum Backend
{
    /// <summary>Gloo over TCP: CPU tensors (bf16 travels as fp32; reduce-scatter is all-reduce + slice).</summary>
    Gloo,
    /// <summary>NCCL: CUDA tensors; needs a CUDA libtorch.</summary>
    Nccl,
}

/// <summary>
/// A c10d process group (<c>ProcessGroupGloo</c> or <c>ProcessGroupNCCL</c>). Every collective is
/// in place or into caller-given outputs, returns a <see cref="Work"/> to <see cref="Work.Wait"/>,
/// and pins its tensors natively until then. A failure (a dead peer, the group timeout) surfaces
/// from <see cref="Work.Wait"/> as a <see cref="DistributedException"/> naming rank and operation.
/// </summary>
public sealed class ProcessGroup : IDisposable
{
    internal readonly ProcessGroupHandle H;
    private readonly Store store;
    private readonly IDisposable? owned;

    /// <summary>This process's rank in the group.</summary>
    public int Rank { get; }
    /// <summary>Number of ranks in the group.</summary>
    public int Size { get; }
    /// <summary>The backend the group runs on.</summary>
    public Backend Backend { get; }
    /// <summary>The timeout every collective of the group runs under.</summary>
    public TimeSpan Timeout { get; }

    private ProcessGroup(IntPtr h, Store store, int rank, int size, Backend backend, TimeSpan timeout, IDisposable? owned)
    {
        H = new ProcessGroupHandle(Dist.Check(h));
        this.store = store;
        this.owned = owned;
        Rank = rank;
        Size = size;
        Backend = backend;
        Timeout = timeout;
    }

    /// <summary>
    /// A Gloo group over <paramref name="store"/>; <paramref name="host"/> is the address peers reach this rank on (127.0.0.1 for one
    /// machine); <paramref name="owned"/> (e.g. the rendezvous store server this rank hosts) is disposed with the group.
    /// </summary>
    public static ProcessGroup Gloo(Store store, int rank, int size, string host, TimeSpan timeout, IDisposable? owned = null)
    {
        Validate(rank, size);
        return new(N.rt_pg_gloo_new(store.H, rank, size, host, (long)timeout.TotalMilliseconds), store, rank, size, Backend.Gloo, timeout, owned);
    }

    /// <summary>An NCCL group over <paramref name="store"/> (CUDA libtorch only; tensors on this rank's device); <paramref name="owned"/> is disposed with the group.</summary>
    public static ProcessGroup Nccl(Store store, int rank, int size, TimeSpan timeout, IDisposable? owned = null)
    {
        Validate(rank, size);
        return new(N.rt_pg_nccl_new(store.H, rank, size, (long)timeout.TotalMilliseconds), store, rank, size, Backend.Nccl, timeout, owned);
    }

    private static void Validate(int rank, int size)
    {
        if (size < 1 || rank < 0 || rank >= size) throw new ArgumentException($"rank {rank} is not in a world of size {size}");
    }

    /// <summary>The store this group rendezvoused through (for small key-value agreements).</summary>
    public Store Store => store;

    /// <summary>All-reduce in place.</summary>
    public Work AllReduce(Tensor t, ReduceOp op = ReduceOp.Sum) => Run(N.rt_pg_allreduce(H, t.H, (int)op), t);

    /// <summary>Broadcast in place from <paramref name="root"/>.</summary>
    public Work Broadcast(Tensor t, int root = 0) => Run(N.rt_pg_broadcast(H, t.H, root), t);

    /// <summary>Reduce in place to <paramref name="root"/> (other ranks' tensors are unspecified afterwards).</summary>
    public Work Reduce(Tensor t, int root, ReduceOp op = ReduceOp.Sum) => Run(N.rt_pg_reduce(H, t.H, root, (int)op), t);

    /// <summary>All-gather of equal shards: <paramref name="output"/> (Size × numel(input) elements) receives rank r's shard at [r·n, (r+1)·n).</summary>
    public Work AllGather(Tensor input, Tensor output) => Run(N.rt_pg_allgather(H, input.H, output.H), input, output);

    /// <summary>
    /// Reduce-scatter of equal shards: rank r receives in <paramref name="output"/> (n elements) the reduction of
    /// every rank's <paramref name="input"/>[r·n, (r+1)·n). Native on NCCL; all-reduce + slice on Gloo.
    /// </summary>
    public Work ReduceScatter(Tensor input, Tensor output, ReduceOp op = ReduceOp.Sum) => Run(N.rt_pg_reduce_scatter(H, input.H, output.H, (int)op), input, output);

    /// <summary>Waits (as a work) until every rank reached the barrier.</summary>
    public Work Barrier() => Run(N.rt_pg_barrier(H));

    /// <summary>Sends <paramref name="t"/> to rank <paramref name="dst"/>.</summary>
    public Work Send(Tensor t, int dst, int tag = 0) => Run(N.rt_pg_send(H, t.H, dst, tag), t);

    /// <summary>Receives into <paramref name="t"/> from rank <paramref name="src"/>.</summary>
    public Work Recv(Tensor t, int src, int tag = 0) => Run(N.rt_pg_recv(H, t.H, src, tag), t);

    private static Work Run(IntPtr w, params Tensor[] keep)
    {
        GC.KeepAlive(keep);
        return new Work(Dist.Check(w));
    }

    /// <summary>Releases the native group (after every work was waited for), then what it owns.</summary>
    public void Dispose()
    {
        H.Dispose();
        owned?.Dispose();
    }
}

/// <summary>One in-flight collective (c10d <c>Work</c>).</summary>
public sealed class Work : IDisposable
{
    private readonly WorkHandle h;

    internal Work(IntPtr p) => h = new WorkHandle(p);

    /// <summary>Blocks until the collective finished; throws <see cref="DistributedException"/> naming the rank and operation when it failed. Holds no managed lock.</summary>
    public void Wait()
    {
        try { Dist.Check(N.rt_work_wait(h)); }
        finally { h.Dispose(); }
    }

    /// <summary>True once the collective has finished (successfully or not).</summary>
    public bool IsCompleted => h.IsClosed || N.rt_work_is_completed(h) != 0;

    /// <summary>Releases the native work (a work not waited for is still pinned until the backend finishes).</summary>
    public void Dispose() => h.Dispose();
}
