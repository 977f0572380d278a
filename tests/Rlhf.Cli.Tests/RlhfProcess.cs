using System.Diagnostics;
using System.Text;

namespace Rlhf.Cli.Tests;

/// <summary>
/// A running <c>dotnet rlhf.dll …</c> child with its stdout and stderr collected, the environment variables named in
/// <c>unset</c> removed and <c>env</c> added; killed with its process tree on dispose.
/// </summary>
public class RlhfProcess : IDisposable
{
    private readonly StringBuilder o = new();
    private readonly StringBuilder e = new();
    private readonly string what;

    /// <summary>The rlhf program next to the tests.</summary>
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "rlhf.dll");

    /// <summary>The child process.</summary>
    public Process P { get; }

    /// <summary>Starts <c>rlhf <paramref name="args"/></c>; <paramref name="what"/> names it in hang-guard messages.</summary>
    public RlhfProcess(string what, IEnumerable<string> args, IEnumerable<string> unset, IReadOnlyDictionary<string, string>? env = null)
    {
        this.what = what;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var k in unset) psi.Environment.Remove(k);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        P = new Process { StartInfo = psi };
        P.OutputDataReceived += (_, d) => { if (d.Data is not null) lock (o) o.AppendLine(d.Data); };
        P.ErrorDataReceived += (_, d) => { if (d.Data is not null) lock (e) e.AppendLine(d.Data); };
        P.Start();
        P.BeginOutputReadLine();
        P.BeginErrorReadLine();
    }

    /// <summary>Standard output so far.</summary>
    public string Out { get { lock (o) return o.ToString(); } }

    /// <summary>Standard error so far.</summary>
    public string Err { get { lock (e) return e.ToString(); } }

    /// <summary>Waits for the exit code; fails the test when the process still runs after <paramref name="guard"/>.</summary>
    public int Wait(TimeSpan guard)
    {
        if (!P.WaitForExit(guard)) Assert.Fail($"hang guard: {what} still runs after {guard.TotalSeconds} s\n{Out}\n{Err}");
        P.WaitForExit();
        return P.ExitCode;
    }

    /// <summary>Kills the process tree if it still runs.</summary>
    public void Dispose()
    {
        try { if (!P.HasExited) P.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        P.Dispose();
        GC.SuppressFinalize(this);
    }
}
