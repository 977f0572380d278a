using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace Rlhf.Shell.Engine;

/// <summary>
/// One worker of <see cref="Launcher"/>: a process in a process group of its own (util-linux <c>setsid</c>), with a
/// parent-death signal (<c>setpriv --pdeathsig SIGKILL</c>) so it dies with the launcher even when the launcher is
/// SIGKILLed, and its output forwarded line by line through a bounded buffer. Signals go to the whole group, so
/// whatever the worker started goes with it.
/// </summary>
public sealed partial class WorkerProcess : IDisposable
{
    /// <summary>Longest piece of output forwarded as one line; a longer line is forwarded in pieces of this many bytes.</summary>
    public const int MaxLineBytes = 64 * 1024;

    /// <summary>SIGINT.</summary>
    public const int SigInt = 2;
    /// <summary>SIGKILL.</summary>
    public const int SigKill = 9;
    /// <summary>SIGTERM.</summary>
    public const int SigTerm = 15;

    private readonly Process process;
    private readonly Task[] pumps;

    private WorkerProcess(int rank, Process process, bool ownGroup, Task[] pumps)
    {
        Rank = rank;
        this.process = process;
        OwnGroup = ownGroup;
        this.pumps = pumps;
    }

    /// <summary>The worker's global rank.</summary>
    public int Rank { get; }

    /// <summary>Its process id (also its process-group id when <see cref="OwnGroup"/>).</summary>
    public int Pid => process.Id;

    /// <summary>True when the worker leads a process group of its own (util-linux <c>setsid</c> was found).</summary>
    public bool OwnGroup { get; }

    /// <summary>The process, for waiting and its exit code.</summary>
    public Process Process => process;

    /// <summary>
    /// Resolves a worker command line: <c>rlhf</c> is this very program (through <c>dotnet</c> when it runs as a dll);
    /// any other program must be an executable file (a path) or a name found on <c>PATH</c>. Throws
    /// <see cref="ArgumentException"/> saying which when it is neither.
    /// </summary>
    public static (string File, List<string> Args) Resolve(IReadOnlyList<string> command)
    {
        var args = command.Skip(1).ToList();
        var program = command[0];
        if (program == "rlhf")
        {
            var self = Environment.ProcessPath ?? throw new ArgumentException("cannot tell which program runs the launcher, so 'rlhf' cannot be resolved");
            if (Path.GetFileNameWithoutExtension(self) == "dotnet")
                args.Insert(0, Assembly.GetEntryAssembly()?.Location ?? throw new ArgumentException("cannot find the rlhf assembly to run as 'rlhf'"));
            return (self, args);
        }
        if (program.Contains('/'))
        {
            if (Directory.Exists(program)) throw new ArgumentException($"worker program '{program}' is a directory, not a program");
            if (!File.Exists(program)) throw new ArgumentException($"worker program '{program}' does not exist");
            if (!IsExecutable(program)) throw new ArgumentException($"worker program '{program}' is not executable (chmod +x, or run it through its interpreter)");
            return (program, args);
        }
        return (FindOnPath(program) ?? throw new ArgumentException($"worker program '{program}' was not found on PATH"), args);
    }

    /// <summary>The full path of an executable <paramref name="name"/> on <c>PATH</c>, or null.</summary>
    public static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p) && IsExecutable(p)) return p;
        }
        return null;
    }

    private static bool IsExecutable(string path) =>
        OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    /// <summary>
    /// Starts local worker <paramref name="localRank"/> of <paramref name="spec"/> (attempt <paramref name="restart"/>), forwarding
    /// each line of its stdout and stderr to <paramref name="stdoutLine"/> and <paramref name="stderrLine"/>. Call it on a
    /// thread that outlives the worker: Linux sends the parent-death signal when the thread that started the child ends.
    /// </summary>
    public static WorkerProcess Start(LaunchSpec spec, int localRank, string file, IReadOnlyList<string> args, Action<string> stdoutLine, Action<string> stderrLine, int restart = 0)
    {
        var rank = spec.GlobalRank(localRank);
        var (launchFile, launchArgs, ownGroup) = Wrap(file, args);
        var psi = new ProcessStartInfo(launchFile)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (var a in launchArgs) psi.ArgumentList.Add(a);
        foreach (var (k, v) in spec.WorkerEnvironment(localRank, restart)) psi.Environment[k] = v;
        var p = new Process { StartInfo = psi };
        try
        {
            if (!p.Start()) throw new InvalidOperationException($"could not start worker rank {rank}: {file}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            p.Dispose();
            throw new InvalidOperationException($"could not start worker rank {rank} ({file}): {e.Message}");
        }
        p.StandardInput.Close(); // workers read no input: EOF at once
        var prefix = spec.PrefixOutput ? $"[rank {rank}] " : "";
        var pumps = new[]
        {
            Pump(p.StandardOutput.BaseStream, l => stdoutLine(prefix + l)),
            Pump(p.StandardError.BaseStream, l => stderrLine(prefix + l)),
        };
        return new WorkerProcess(rank, p, ownGroup, pumps);
    }

    // setpriv --pdeathsig SIGKILL -- setsid -- program args: same pid throughout (each execs the next; setsid does not
    // fork, since a child of .NET is not a group leader), so the pid is the process-group id.
    private static (string File, List<string> Args, bool OwnGroup) Wrap(string file, IReadOnlyList<string> args)
    {
        var chain = new List<string>();
        var setpriv = FindOnPath("setpriv");
        var setsid = FindOnPath("setsid");
        if (setpriv is not null) chain.AddRange([setpriv, "--pdeathsig", "SIGKILL", "--"]);
        if (setsid is not null) chain.AddRange([setsid, "--"]);
        chain.Add(file);
        chain.AddRange(args);
        return (chain[0], chain.Skip(1).ToList(), setsid is not null);
    }

    /// <summary>
    /// Forwards <paramref name="stream"/> to <paramref name="line"/> one line at a time (without the newline). At most
    /// <see cref="MaxLineBytes"/> bytes are buffered: a longer line is forwarded in pieces, cut at a UTF-8 character boundary.
    /// </summary>
    public static Task Pump(Stream stream, Action<string> line) => Task.Factory.StartNew(() =>
    {
        var buf = new byte[MaxLineBytes];
        var len = 0;
        void Emit(int start, int count)
        {
            if (count > 0 && buf[start + count - 1] == '\r') count--;
            line(Encoding.UTF8.GetString(buf, start, count));
        }
        try
        {
            int n;
            while ((n = stream.Read(buf, len, buf.Length - len)) > 0)
            {
                var scanFrom = len;
                len += n;
                var start = 0;
                int nl;
                while ((nl = Array.IndexOf(buf, (byte)'\n', scanFrom, len - scanFrom)) >= 0)
                {
                    Emit(start, nl - start);
                    start = scanFrom = nl + 1;
                }
                if (start == 0 && len == buf.Length)
                {
                    // A full buffer without a newline: forward it up to the last whole UTF-8 character.
                    start = Utf8Boundary(buf, len);
                    Emit(0, start);
                }
                Buffer.BlockCopy(buf, start, buf, 0, len - start);
                len -= start;
            }
            if (len > 0) Emit(0, len);
        }
        catch (IOException) { }
        catch (ObjectDisposedException) { }
    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    // The longest prefix of buf[0..len) that does not end inside a UTF-8 character (len when the bytes are not UTF-8).
    private static int Utf8Boundary(byte[] buf, int len)
    {
        var i = len - 1;
        while (i > 0 && i > len - 4 && (buf[i] & 0xC0) == 0x80) i--;
        var lead = buf[i];
        var need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        return i + need > len && i > 0 ? i : len;
    }

    /// <summary>Sends <paramref name="signal"/> to the worker's process group (to the process tree when it has no group of its own).</summary>
    public void Signal(int signal)
    {
        if (process.HasExited && !OwnGroup) return;
        if (OwnGroup)
        {
            // The group outlives its leader when the worker left children behind; signal it even then.
            _ = Kill(-Pid, signal);
            return;
        }
        try
        {
            if (signal == SigKill) process.Kill(entireProcessTree: true);
            else _ = Kill(Pid, signal);
        }
        catch (InvalidOperationException) { }
    }

    /// <summary>Waits (up to <paramref name="timeout"/>) until the forwarded output reached its end.</summary>
    public void DrainOutput(TimeSpan timeout) => Task.WaitAll(pumps, timeout);

    /// <summary>Stops the whole group and releases the process.</summary>
    public void Dispose()
    {
        Signal(SigKill);
        try { process.WaitForExit(5_000); } catch (InvalidOperationException) { }
        process.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
