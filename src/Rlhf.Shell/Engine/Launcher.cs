using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Rlhf.Shell.Engine;

/// <summary>
/// Starts the workers of one node with the torchrun environment, forwards their output line by line prefixed with
/// the rank, and when one fails stops the rest (SIGTERM to each worker's process group, SIGKILL after the grace
/// period) and reports the rank that failed first. SIGINT and SIGTERM to the launcher are forwarded the same way.
/// Workers never outlive the launcher: each has a parent-death signal, and a guardian shell kills every worker group
/// when the launcher's end of a pipe closes, which happens however the launcher ends (SIGKILL included).
/// With <see cref="LaunchSpec.MaxRestarts"/> (torchrun's <c>--max-restarts</c>, Ray Train's <c>FailureConfig.max_failures</c>)
/// a failure stops every worker and starts them all again, up to that many times, each attempt with its number in
/// <see cref="LaunchSpec.RestartCountVariable"/> and, on a single node, a fresh rendezvous port (the old store's port may
/// still be held). Workers resume from their last checkpoint themselves (<c>rlhf train … --resume</c>).
/// </summary>
public sealed class Launcher
{
    private readonly LaunchSpec spec;
    private readonly TextWriter stdout;
    private readonly TextWriter stderr;
    private readonly object writeLock = new();

    /// <summary>A launcher writing worker output to the given writers; throws <see cref="ArgumentException"/> (one line) for a bad spec.</summary>
    public Launcher(LaunchSpec spec, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        spec.Validate();
        this.spec = spec;
        this.stdout = stdout ?? Console.Out;
        this.stderr = stderr ?? Console.Error;
    }

    private abstract record Event;
    private sealed record Exited(int Attempt, int Local, int Code) : Event;
    private sealed record Signalled(int Signal) : Event;

    /// <summary>
    /// Runs every local worker to completion (restarting them all after a failure while restarts remain); returns 0, the exit
    /// code of the worker that failed first in the last attempt, or 128 + the signal that stopped the launcher (130 for
    /// SIGINT, 143 for SIGTERM; cancelling <paramref name="cancel"/> counts as SIGINT). Call it on a thread that lives until
    /// it returns (the workers' parent-death signal follows that thread).
    /// </summary>
    public int Run(CancellationToken cancel = default)
    {
        var (file, args) = WorkerProcess.Resolve(spec.Command);
        var events = new BlockingCollection<Event>();
        using var guardian = Guardian.Start();
        using var signals = new SignalForwarder(sig => events.Add(new Signalled(sig)));
        using var cancelled = cancel.Register(() => events.Add(new Signalled(WorkerProcess.SigInt)));
        var attempt = spec;
        try
        {
            for (var restart = 0; ; restart++)
            {
                var (code, failed) = RunOnce(attempt, restart, file, args, events, guardian);
                if (!failed || restart >= spec.MaxRestarts) return code;
                // torchrun: every worker of the group is stopped and started again; a single node takes a fresh rendezvous port.
                if (spec.Nnodes == 1) attempt = attempt with { MasterPort = FreePort(spec.MasterAddr) ?? attempt.MasterPort };
                Write(stderr, $"rlhf launch: restarting all {spec.NprocPerNode} workers (restart {restart + 1} of {spec.MaxRestarts}, {LaunchSpec.RestartCountVariable}={restart + 1}, port {attempt.MasterPort})");
            }
        }
        finally
        {
            guardian?.Release();
        }
    }

    /// <summary>A free TCP port on <paramref name="addr"/>'s interface (null when it cannot be bound here).</summary>
    private static int? FreePort(string addr)
    {
        try
        {
            var host = addr.StartsWith('[') && addr.EndsWith(']') ? addr[1..^1] : addr;
            var ip = System.Net.IPAddress.TryParse(host, out var a) ? a : System.Net.IPAddress.Loopback;
            var l = new System.Net.Sockets.TcpListener(ip, 0);
            l.Start();
            var port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            return port;
        }
        catch (System.Net.Sockets.SocketException) { return null; }
    }

    private (int Code, bool Failed) RunOnce(LaunchSpec attempt, int restart, string file, List<string> args, BlockingCollection<Event> events, Guardian? guardian)
    {
        var workers = new List<WorkerProcess>();
        try
        {
            for (var local = 0; local < attempt.NprocPerNode; local++)
            {
                var w = WorkerProcess.Start(attempt, local, file, args, l => Write(stdout, l), l => Write(stderr, l), restart);
                workers.Add(w);
                guardian?.Watch(w);
                var index = local;
                _ = w.Process.WaitForExitAsync().ContinueWith(_ => events.Add(new Exited(restart, index, w.Process.ExitCode)), TaskScheduler.Default);
            }
            return Supervise(workers, events, restart);
        }
        finally
        {
            foreach (var w in workers) w.Signal(WorkerProcess.SigKill); // the groups too: nothing a worker started survives it
            foreach (var w in workers) w.DrainOutput(TimeSpan.FromSeconds(2));
            foreach (var w in workers) w.Dispose();
        }
    }

    private (int Code, bool Failed) Supervise(List<WorkerProcess> workers, BlockingCollection<Event> events, int restart)
    {
        var running = Enumerable.Range(0, workers.Count).ToHashSet();
        (int Local, int Code)? firstFailure = null;
        int? signal = null;
        var stoppedRunning = new List<int>();   // ranks still running when the launcher began stopping them
        DateTime? killAt = null;

        void StopAll(int sig)
        {
            foreach (var i in running) workers[i].Signal(sig);
        }

        while (running.Count > 0)
        {
            var wait = killAt is { } k ? Math.Max(0, (int)(k - DateTime.UtcNow).TotalMilliseconds) : Timeout.Infinite;
            if (!events.TryTake(out var e, wait))
            {
                StopAll(WorkerProcess.SigKill);   // the grace period is over
                killAt = null;
                continue;
            }
            switch (e)
            {
                case Exited x when x.Attempt != restart:
                    break;                           // a worker of an earlier attempt (already counted there)
                case Exited x:
                    running.Remove(x.Local);
                    if (x.Code != 0 && firstFailure is null && signal is null)
                    {
                        firstFailure = (x.Local, x.Code);
                        stoppedRunning.AddRange(running.Order().Select(i => workers[i].Rank));
                        StopAll(WorkerProcess.SigTerm);
                        killAt = DateTime.UtcNow + spec.Grace;
                    }
                    break;
                case Signalled s when signal is null && firstFailure is null:
                    signal = s.Signal;
                    stoppedRunning.AddRange(running.Order().Select(i => workers[i].Rank));
                    StopAll(s.Signal);
                    killAt = DateTime.UtcNow + spec.Grace;
                    break;
                case Signalled:
                    StopAll(WorkerProcess.SigKill);   // a second signal: no more grace
                    killAt = null;
                    break;
            }
        }

        var stopped = stoppedRunning.Count == 0 ? "" :
            $"; stopped {(stoppedRunning.Count == 1 ? "rank" : "ranks")} {string.Join(", ", stoppedRunning)}, still running at the time";
        if (firstFailure is { } f)
        {
            Write(stderr, $"rlhf launch: rank {workers[f.Local].Rank} failed first ({DescribeExit(f.Code)}){stopped}");
            return (f.Code, true);
        }
        if (signal is { } sig)
        {
            Write(stderr, $"rlhf launch: received {SignalName(sig)}, forwarded it to the workers{stopped}");
            return (128 + sig, false);
        }
        return (0, false);
    }

    /// <summary>"exit code 7", or "killed by SIGKILL" for 137 (the shell's 128 + signal convention, which .NET reports).</summary>
    public static string DescribeExit(int code) => code > 128 && code < 128 + 32 ? $"exit code {code}, killed by {SignalName(code - 128)}" : $"exit code {code}";

    private static string SignalName(int sig) => sig switch
    {
        1 => "SIGHUP", 2 => "SIGINT", 6 => "SIGABRT", 9 => "SIGKILL", 11 => "SIGSEGV", 13 => "SIGPIPE", 15 => "SIGTERM",
        _ => $"signal {sig}",
    };

    private void Write(TextWriter w, string line)
    {
        lock (writeLock)
        {
            try { w.WriteLine(line); w.Flush(); }
            catch (IOException) { }   // our own output is gone (a closed pipe): keep supervising
        }
    }

    /// <summary>On SIGINT/SIGTERM, tells the supervisor instead of ending the launcher at once.</summary>
    private sealed class SignalForwarder : IDisposable
    {
        private readonly List<PosixSignalRegistration> regs = [];

        public SignalForwarder(Action<int> received)
        {
            regs.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; received(WorkerProcess.SigInt); }));
            regs.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; received(WorkerProcess.SigTerm); }));
        }

        public void Dispose()
        {
            foreach (var r in regs) r.Dispose();
        }
    }

    /// <summary>
    /// A shell that reads worker process-group ids from a pipe only the launcher holds: at end of input (the launcher
    /// ended, however) it SIGKILLs every group it was told about; "done" ends it quietly. It ignores the terminal's
    /// signals, so Ctrl-C reaches the launcher, which stops the workers in order.
    /// </summary>
    private sealed class Guardian : IDisposable
    {
        private const string Script = """
            trap '' INT TERM HUP
            g=
            while IFS= read -r p; do
              [ "$p" = done ] && exit 0
              g="$g $p"
            done
            for p in $g; do kill -KILL "$p" 2>/dev/null; done
            """;

        private readonly Process process;

        private Guardian(Process process) => this.process = process;

        public static Guardian? Start()
        {
            var sh = WorkerProcess.FindOnPath("sh");
            if (sh is null) return null;
            var psi = new ProcessStartInfo(sh) { RedirectStandardInput = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add(Script);
            var p = Process.Start(psi);
            return p is null ? null : new Guardian(p);
        }

        public void Watch(WorkerProcess w)
        {
            try { process.StandardInput.WriteLine(w.OwnGroup ? $"-{w.Pid}" : $"{w.Pid}"); process.StandardInput.Flush(); }
            catch (IOException) { }
        }

        public void Release()
        {
            try { process.StandardInput.WriteLine("done"); process.StandardInput.Close(); }
            catch (IOException) { }
            process.WaitForExit(2_000);
        }

        public void Dispose()
        {
            try { if (!process.HasExited) process.Kill(); } catch (InvalidOperationException) { }
            process.Dispose();
        }
    }
}
