/// Runs every script in scripts/ with `dotnet fsi` (after the README's build) and checks what it prints and writes.
module Rlhf.FSharp.Tests.ScriptTests

open System
open System.Diagnostics
open System.IO
open Xunit
open Rlhf.FSharp.Tests.ModuleTests

/// Runs `dotnet fsi SCRIPT ARGS…` from the repository root; returns (exit code, stdout, stderr).
let private fsi (script: string) (args: string list) : int * string * string =
    let psi = ProcessStartInfo("dotnet", WorkingDirectory = repoRoot, RedirectStandardOutput = true, RedirectStandardError = true)
    for a in [ "fsi"; script ] @ args do psi.ArgumentList.Add a
    use p = Process.Start psi |> nonNull
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit(TimeSpan.FromMinutes 5.0)) then
        p.Kill true
        failwith $"dotnet fsi {script} did not finish in 5 minutes"
    p.ExitCode, out.Result, err.Result

let private withTempDir (f: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("rlhf-fsx-")
    try f dir.FullName finally dir.Delete true

[<Fact>]
let ``loss_playground prints hand-computed losses and writes three PNG plots`` () =
    withTempDir (fun dir ->
        let rc, out, err = fsi "scripts/loss_playground.fsx" [ dir ]
        Assert.True((rc = 0), $"exit {rc}\n{out}\n{err}")
        // −logσ(0) = ln 2; PPO with ε = 0.2: max(−1.5, −1.2) = −1.2 and max(0.5, 0.8) = 0.8;
        // GRPO of [1; 0; 0; 1]: ±0.5 / (std 0.57735 + 1e-4) = ±0.865875.
        Assert.Contains("dpo sigmoid beta=0.1 z=0: 0.693147", out)
        Assert.Contains("ppo eps=0.2 A=+1 ratio=1.5: -1.200000", out)
        Assert.Contains("ppo eps=0.2 A=-1 ratio=0.5: 0.800000", out)
        Assert.Contains("grpo advantages of rewards [1; 0; 0; 1]: 0.865875; -0.865875; -0.865875; 0.865875", out)
        for name in [ "dpo"; "ppo"; "grpo" ] do
            let png = Path.Combine(dir, name + ".png")
            Assert.True(File.Exists png, $"{png} was not written\n{out}")
            let bytes = File.ReadAllBytes png
            Assert.True(bytes.Length > 1000, $"{png} has only {bytes.Length} bytes")
            Assert.Equal<byte[]>([| 0x89uy; byte 'P'; byte 'N'; byte 'G' |], bytes[0..3]))

[<Fact>]
let ``custom_reward scores with the F# reward, then trains on it`` () =
    withTempDir (fun dir ->
        let rc, out, err = fsi "scripts/custom_reward.fsx" [ dir ]
        Assert.Contains("sevens(7777, stopped=true) = 1.200", out)
        Assert.Contains("sevens(1737, stopped=false) = 0.500", out)
        Assert.True((rc = 0), $"exit {rc}\n{out}\n{err}")
        Assert.Contains("sevens reward: step 1 ", out))

[<Fact>]
let ``quickstart loads its config, trains, and prints the gold reward before and after`` () =
    withTempDir (fun dir ->
        let rc, out, err = fsi "scripts/quickstart.fsx" [ dir ]
        Assert.Contains("task reverse", out)
        Assert.True((rc = 0), $"exit {rc}\n{out}\n{err}")
        Assert.Contains("gold reward (objective/scores): before (step 1) ", out))

[<Fact>]
let ``a script without the build names the build command`` () =
    withTempDir (fun dir ->
        // The scripts alone, with no src/Rlhf.FSharp/bin beside them.
        let scripts = Directory.CreateDirectory(Path.Combine(dir, "scripts")).FullName
        for f in Directory.GetFiles(Path.Combine(repoRoot, "scripts"), "*.fsx") do
            File.Copy(f, Path.Combine(scripts, Path.GetFileName f |> nonNull))
        let rc, out, err = fsi (Path.Combine(scripts, "loss_playground.fsx")) []
        Assert.True((rc = 2), $"exit {rc}\n{out}\n{err}")
        Assert.Contains("dotnet build src/Rlhf.FSharp -c Release", err)
        Assert.DoesNotContain("FS0078", out + err))
