using N = Rlhf.Torch.Native.Native;
using System.Text.Json;

namespace Rlhf.Torch;

/// <summary>
/// libtorch's operator profiler on the calling thread: every ATen op and autograd node between <see cref="Record"/> and
/// its disposal is timed and written as a Chrome trace (open it in chrome://tracing or Perfetto); <see cref="Summarize"/>
/// reads one back as self time per op name — where a step's time goes, without leaving .NET.
/// </summary>
public static class Profiler
{
    /// <summary>Starts recording this thread's ops; disposing the result writes the trace to <paramref name="tracePath"/>.</summary>
    public static IDisposable Record(string tracePath)
    {
        Tensor.Check(N.rt_profile_begin(Path.GetFullPath(tracePath)));
        return new Recording();
    }

    private sealed class Recording : IDisposable
    {
        private bool done;
        public void Dispose()
        {
            if (done) return;
            done = true;
            Tensor.Check(N.rt_profile_end());
        }
    }

    /// <summary>One op name's totals in a trace: calls, and self time (its own time, less the ops it called) in ms.</summary>
    public sealed record OpTime(string Name, int Calls, double SelfMs, double TotalMs);

    /// <summary>
    /// Self time per op name in a Chrome trace of complete ("X") events, largest first. An op's self time is its duration
    /// less the durations of the ops nested directly inside it on the same thread.
    /// </summary>
    public static IReadOnlyList<OpTime> Summarize(string tracePath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(tracePath));
        var events = (doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.GetProperty("traceEvents"))
            .EnumerateArray()
            .Where(e => e.TryGetProperty("ph", out var ph) && ph.GetString() == "X")
            .Select(e => (Name: e.GetProperty("name").GetString() ?? "?", Tid: e.TryGetProperty("tid", out var t) ? t.ToString() : "",
                          Start: e.GetProperty("ts").GetDouble(), Dur: e.GetProperty("dur").GetDouble()))
            .OrderBy(e => e.Tid, StringComparer.Ordinal).ThenBy(e => e.Start).ThenByDescending(e => e.Dur)
            .ToList();
        var totals = new Dictionary<string, (int Calls, double Self, double Total)>();
        var children = new double[events.Count];
        var open = new Stack<int>();
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            while (open.Count > 0 && (events[open.Peek()].Tid != e.Tid || events[open.Peek()].Start + events[open.Peek()].Dur <= e.Start)) open.Pop();
            if (open.Count > 0) children[open.Peek()] += e.Dur;
            open.Push(i);
        }
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            totals.TryGetValue(e.Name, out var t);
            totals[e.Name] = (t.Calls + 1, t.Self + Math.Max(0, e.Dur - children[i]), t.Total + e.Dur);
        }
        return [.. totals.Select(kv => new OpTime(kv.Key, kv.Value.Calls, kv.Value.Self / 1e3, kv.Value.Total / 1e3)).OrderByDescending(o => o.SelfMs)];
    }
}
