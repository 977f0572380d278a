using System.Diagnostics;
using Rlhf.Core.Models;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Training.Data;

namespace Rlhf.Shell.Training.Online;

/// <summary>
/// The asynchronous loop's generator thread (async_rlhf's shape, Noukhovitch et al. 2024: generate batch n + 1 while training on
/// batch n): the trainer submits a step's prompts with a lease on the published weights version that must sample them; the worker
/// generates in submission order, releases the lease and hands the <see cref="GeneratedStep"/> back. A failure on the worker ends
/// the thread (freeing the generator) and is thrown to the trainer, naming the step it was generating, at its next
/// <see cref="Submit"/>, <see cref="Take"/> or <see cref="Peek"/>; <see cref="Dispose"/> stops the thread (after the generation
/// in progress), releases every lease still queued and frees the generator on its own thread.
/// </summary>
public sealed class RolloutWorker : IDisposable
{
    private sealed record Job(long Step, PromptExample[] Prompts, WeightsLease Lease);

    private readonly RolloutProducer producer;
    private readonly TransformerLayers layers;
    private readonly Queue<Job> jobs = new();
    private readonly Dictionary<long, GeneratedStep> done = new();
    private readonly object gate = new();
    private readonly Thread thread;
    private readonly HashSet<long> busy = new();
    private readonly int threads;
    private readonly Func<WeightsLease>? latest;
    private bool stopping;
    private Exception? fault;
    private long faultStep;
    private long idleTicks;

    /// <summary>
    /// Starts the worker thread over <paramref name="producer"/> (owned: disposed on the worker thread), generating with
    /// <paramref name="threads"/> intra-op threads (libtorch's OpenMP backend keeps the count per calling thread). With
    /// <paramref name="latest"/> (in-flight updates) the worker acquires the newest published version between decode steps and
    /// adopts it when it is newer than the one it holds.
    /// </summary>
    public RolloutWorker(RolloutProducer producer, TransformerLayers layers, int threads, Func<WeightsLease>? latest = null)
    {
        this.latest = latest;
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        this.producer = producer;
        this.layers = layers;
        this.threads = threads;
        thread = new Thread(Loop) { IsBackground = true, Name = ThreadName };
        thread.Start();
    }

    /// <summary>Test seam: runs on the generator thread before each step's generation, in the execution context that started the worker.</summary>
    internal static readonly AsyncLocal<Action<long>?> BeforeGenerate = new();

    /// <summary>The thread's name, as errors and debuggers show it.</summary>
    public const string ThreadName = "rlhf-generator";

    /// <summary>Seconds the worker has spent waiting for a job since it started.</summary>
    public double IdleSeconds
    {
        get { lock (gate) return idleTicks / (double)Stopwatch.Frequency; }
    }

    /// <summary>Queues step <paramref name="step"/>: its prompts are sampled with the version <paramref name="lease"/> holds (the worker disposes the lease).</summary>
    public void Submit(long step, PromptExample[] prompts, WeightsLease lease)
    {
        lock (gate)
        {
            if (stopping || fault is not null)
            {
                lease.Dispose();
                ThrowIfFaulted();
                throw new ObjectDisposedException(nameof(RolloutWorker));
            }
            jobs.Enqueue(new Job(step, prompts, lease));
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>Puts an already generated step (restored from a checkpoint) where <see cref="Take"/> finds it.</summary>
    public void Restore(GeneratedStep generated)
    {
        lock (gate)
        {
            done[generated.Step] = generated;
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>Waits for step <paramref name="step"/>'s rollouts and removes them; rethrows a worker failure; honours <paramref name="cancel"/>.</summary>
    public GeneratedStep Take(long step, CancellationToken cancel = default) => Wait(step, remove: true, cancel);

    /// <summary>Waits for step <paramref name="step"/>'s rollouts and leaves them queued (what a checkpoint saves).</summary>
    public GeneratedStep Peek(long step, CancellationToken cancel = default) => Wait(step, remove: false, cancel);

    private GeneratedStep Wait(long step, bool remove, CancellationToken cancel)
    {
        using var wake = cancel.Register(() => { lock (gate) Monitor.PulseAll(gate); });
        lock (gate)
        {
            while (true)
            {
                if (done.TryGetValue(step, out var g))
                {
                    if (remove) done.Remove(step);
                    return g;
                }
                ThrowIfFaulted();
                if (stopping) throw new ObjectDisposedException(nameof(RolloutWorker));
                cancel.ThrowIfCancellationRequested();
                if (!jobs.Any(j => j.Step == step) && !busy.Contains(step))
                    throw new InvalidOperationException($"step {step}'s rollouts were never submitted");
                Monitor.Wait(gate);
            }
        }
    }

    /// <summary>Throws the worker's failure (under the gate), naming the thread and the step it was generating.</summary>
    private void ThrowIfFaulted()
    {
        if (fault is not null)
            throw new InvalidOperationException($"the generator thread ({ThreadName}) failed generating step {faultStep}'s rollouts: {fault.Message}", fault);
    }

    private void Loop()
    {
        long step = 0;
        try
        {
            while (true)
            {
                Job job;
                lock (gate)
                {
                    var from = Stopwatch.GetTimestamp();
                    while (jobs.Count == 0 && !stopping) Monitor.Wait(gate);
                    idleTicks += Stopwatch.GetTimestamp() - from;
                    if (stopping) return;
                    job = jobs.Dequeue();
                    busy.Add(job.Step);
                    step = job.Step;
                }
                GeneratedStep generated;
                var held = job.Lease;
                try
                {
                    // Per job: libtorch initialises a thread's OpenMP count lazily from the last global setting on its first parallel op.
                    Rlhf.Torch.Torch.NumThreads = threads;
                    using var scope = Rlhf.Torch.Torch.NewScope();
                    BeforeGenerate.Value?.Invoke(job.Step);
                    Func<WeightsLease?>? newer = latest is null ? null : () =>
                    {
                        var l = latest();
                        if (l.Version <= held.Version) { l.Dispose(); return null; }
                        held.Dispose();
                        held = l;
                        return l;
                    };
                    generated = producer.Generate(job.Step, job.Prompts, job.Lease, layers, newer);
                }
                finally { held.Dispose(); }
                lock (gate)
                {
                    busy.Remove(job.Step);
                    done[job.Step] = generated;
                    Monitor.PulseAll(gate);
                }
            }
        }
        catch (Exception e)
        {
            lock (gate)
            {
                fault = e;
                faultStep = step;
                busy.Clear();
                Monitor.PulseAll(gate);
            }
        }
        finally
        {
            producer.Dispose();
        }
    }

    /// <summary>Stops the worker (after the generation in progress) and releases every lease still queued.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            stopping = true;
            Monitor.PulseAll(gate);
        }
        thread.Join();
        lock (gate)
            while (jobs.Count > 0) jobs.Dequeue().Lease.Dispose();
    }
}
