using System.Diagnostics;
using Rlhf.Shell.Engine;
using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Engine.Worker;

using Torch = Rlhf.Torch.Torch;

/// <summary>The scenarios a worker process can run; each checks its own results and exits non-zero on a mismatch.</summary>
internal static partial class Scenarios
{
    internal static int Run(string[] args)
    {
        if (args.Length == 0) throw new ArgumentException("usage: <scenario> [key=value ...]");
        var kv = args.Skip(1).Select(a => a.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");
        return args[0] switch
        {
            "collectives" => Collectives(kv),
            "peer-dies" => PeerDies(kv),
            "peer-hangs" => PeerHangs(kv),
            "exit" => ExitWith(kv),
            "store-binding" => StoreBinding(kv),
            _ => RunEngine(args[0], kv),
        };
    }

    private static TimeSpan Timeout(Dictionary<string, string> kv) => TimeSpan.FromSeconds(double.Parse(kv.GetValueOrDefault("timeout", "30")));

    private static void Expect(bool ok, string what)
    {
        if (!ok) throw new InvalidOperationException("check failed: " + what);
    }

    private static void ExpectEqual(Tensor actual, float[] expected, string what)
    {
        var a = actual.Float().ToArray<float>();
        Expect(a.Length == expected.Length, $"{what}: length {a.Length} != {expected.Length}");
        for (var i = 0; i < a.Length; i++)
            Expect(a[i] == expected[i], $"{what}: [{i}] = {a[i]}, expected {expected[i]} (got [{string.Join(", ", a)}])");
    }

    /// <summary>Every collective on uneven, padded sizes, in fp32 and bf16 (which travels as fp32 on Gloo).</summary>
    private static int Collectives(Dictionary<string, string> kv)
    {
        var env = DistributedEnvironment.FromProcess();
        using var pg = env.InitProcessGroup(Timeout(kv));
        int r = pg.Rank, ws = pg.Size;
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var scope = Torch.NewScope();
            string D(string op) => $"{op} ({dtype}, rank {r} of {ws})";

            // all-reduce SUM over an odd length: rank r contributes (i+1)(r+1).
            const int n = 7;
            var t = (Torch.Arange(1.0, n + 1, 1.0) * (r + 1)).To(dtype);
            pg.AllReduce(t, ReduceOp.Sum).Wait();
            Expect(t.Dtype == dtype, D("allreduce keeps the dtype"));
            ExpectEqual(t, Enumerable.Range(1, n).Select(i => (float)(i * ws * (ws + 1) / 2)).ToArray(), D("allreduce sum"));

            // all-reduce MAX: rank r holds 10r + i.
            var m = (Torch.Arange(0.0, n, 1.0) + 10 * r).To(dtype);
            pg.AllReduce(m, ReduceOp.Max).Wait();
            ExpectEqual(m, Enumerable.Range(0, n).Select(i => (float)(10 * (ws - 1) + i)).ToArray(), D("allreduce max"));

            // broadcast from the last rank.
            var root = ws - 1;
            var b = r == root ? (Torch.Arange(0.0, 5, 1.0) * 3 + 0.5).To(dtype) : Torch.Zeros([5], dtype);
            pg.Broadcast(b, root).Wait();
            ExpectEqual(b, Enumerable.Range(0, 5).Select(i => i * 3 + 0.5f).ToArray(), D("broadcast"));

            // reduce (SUM) to rank 0 only.
            var red = Torch.Full([3], r + 1.0, dtype);
            pg.Reduce(red, 0).Wait();
            if (r == 0) ExpectEqual(red, Enumerable.Repeat((float)(ws * (ws + 1) / 2), 3).ToArray(), D("reduce"));

            // all-gather into equal padded shards: rank r has r + 3 real elements, padded to ws + 2.
            var len = ws + 2;
            var own = Torch.Zeros([len], dtype);
            own.Narrow(0, 0, r + 3).Copy_((Torch.Arange(0.0, r + 3, 1.0) + 100 * r).To(dtype));
            var all = Torch.Zeros([ws * len], dtype);
            pg.AllGather(own, all).Wait();
            var expect = new float[ws * len];
            for (var q = 0; q < ws; q++)
                for (var i = 0; i < q + 3; i++) expect[q * len + i] = 100 * q + i;
            ExpectEqual(all, expect, D("allgather"));

            // reduce-scatter of 5 per rank: input[j] = j + r; rank r gets Σ_q (r·5 + k + q).
            const int k = 5;
            var input = (Torch.Arange(0.0, ws * k, 1.0) + r).To(dtype);
            var outp = Torch.Zeros([k], dtype);
            pg.ReduceScatter(input, outp).Wait();
            ExpectEqual(outp, Enumerable.Range(0, k).Select(i => (float)(ws * (r * k + i) + ws * (ws - 1) / 2)).ToArray(), D("reduce_scatter"));
            ExpectEqual(input, Enumerable.Range(0, ws * k).Select(i => (float)(i + r)).ToArray(), D("reduce_scatter leaves its input alone"));

            pg.Barrier().Wait();

            // send/recv around a ring.
            var send = Torch.Full([4], r + 1.0, dtype);
            var recv = Torch.Zeros([4], dtype);
            var ws1 = pg.Send(send, (r + 1) % ws, tag: 7);
            var wr = pg.Recv(recv, (r - 1 + ws) % ws, tag: 7);
            ws1.Wait();
            wr.Wait();
            ExpectEqual(recv, Enumerable.Repeat((float)((r - 1 + ws) % ws + 1), 4).ToArray(), D("send/recv"));
        }
        // the store: a counter every rank bumps, then waits for.
        pg.Store.Add("visits", 1);
        pg.Barrier().Wait();
        Expect(pg.Store.Add("visits", 0) == ws, "store counter");
        pg.Barrier().Wait();
        Console.WriteLine($"OK collectives rank {r}");
        return 0;
    }

    /// <summary>Rank 1 announces itself and waits to be killed; rank 0 then runs an all-reduce that must fail naming rank and op.</summary>
    private static int PeerDies(Dictionary<string, string> kv)
    {
        var env = DistributedEnvironment.FromProcess();
        using var pg = env.InitProcessGroup(Timeout(kv));
        pg.Barrier().Wait();
        if (pg.Rank != 0)
        {
            Console.WriteLine("READY");
            Thread.Sleep(System.Threading.Timeout.Infinite);
        }
        return ExpectFailure(pg, "allreduce");
    }

    /// <summary>Rank 1 stays alive but never joins the collective; rank 0's all-reduce must time out with a clear error.</summary>
    private static int PeerHangs(Dictionary<string, string> kv)
    {
        var env = DistributedEnvironment.FromProcess();
        using var pg = env.InitProcessGroup(Timeout(kv));
        pg.Barrier().Wait();
        if (pg.Rank != 0)
        {
            Thread.Sleep(TimeSpan.FromSeconds(double.Parse(kv.GetValueOrDefault("sleep", "60"))));
            return 0;
        }
        return ExpectFailure(pg, "allreduce");
    }

    private static int ExpectFailure(ProcessGroup pg, string op)
    {
        var sw = Stopwatch.StartNew();
        try
        {
            using var t = Torch.Ones([16]);
            pg.AllReduce(t).Wait();
            Console.WriteLine("UNEXPECTED: allreduce succeeded");
            return 1;
        }
        catch (DistributedException e)
        {
            Console.WriteLine($"FAILED after {sw.Elapsed.TotalSeconds:F1}s: {e.Message}");
            var named = e.Message.Contains($"rank {pg.Rank}") && e.Message.Contains(op);
            // Returning disposes the broken group: the process must still leave promptly (the tests' hang guard).
            Console.Out.Flush();
            return named ? 0 : 2;
        }
    }

    /// <summary>Exits with code <c>code</c> on rank <c>rank</c> (others sleep <c>sleep</c> seconds, then exit 0) — for launcher tests.</summary>
    private static int ExitWith(Dictionary<string, string> kv)
    {
        var env = DistributedEnvironment.FromProcess();
        Console.WriteLine($"hello from rank {env.Rank} of {env.WorldSize} local {env.LocalRank}/{env.LocalWorldSize} at {env.MasterAddr}:{env.MasterPort} pid {Environment.ProcessId}");
        var failRank = int.Parse(kv.GetValueOrDefault("rank", "-1"));
        if (env.Rank == failRank)
        {
            Thread.Sleep(TimeSpan.FromSeconds(double.Parse(kv.GetValueOrDefault("delay", "0.5"))));
            Console.Error.WriteLine($"rank {env.Rank} failing on purpose");
            return int.Parse(kv.GetValueOrDefault("code", "3"));
        }
        Thread.Sleep(TimeSpan.FromSeconds(double.Parse(kv.GetValueOrDefault("sleep", "0"))));
        return 0;
    }
}
