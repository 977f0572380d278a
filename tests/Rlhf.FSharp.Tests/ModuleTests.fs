/// Tests of the F# modules over Shell: configs, rollouts, losses on hand-computed values, rewards, generation, training.
module Rlhf.FSharp.Tests.ModuleTests

open System
open System.IO
open Xunit
open Rlhf.Core.Losses
open Rlhf.Core.Models
open Rlhf.Core.Rollouts
open Rlhf.Settings
open Rlhf.Shell.Generation
open Rlhf.Shell.Io.Tokenizers
open Rlhf.FSharp

/// The repository root: the nearest folder above the test binaries that holds Rlhf.sln.
let repoRoot =
    let rec up (d: DirectoryInfo | null) =
        match d with
        | null -> failwith $"no Rlhf.sln above {AppContext.BaseDirectory}"
        | d when File.Exists(Path.Combine(d.FullName, "Rlhf.sln")) -> d.FullName
        | d -> up d.Parent
    up (DirectoryInfo AppContext.BaseDirectory)

let private quickstart = Path.Combine(repoRoot, "configs", "quickstart.yaml")

let private okOrFail (r: Result<'T, 'E>) : 'T =
    match r with
    | Ok v -> v
    | Error e -> failwith $"expected Ok, got Error {e}"

// ---- Config ----

[<Fact>]
let ``Config.load reads the quickstart with its overrides`` () =
    let c = Config.load quickstart [ "training.max_steps=7" ] |> okOrFail
    Assert.Equal("reverse", c.Data.Task)
    Assert.Equal("7", string c.Training.MaxSteps)
    Assert.Equal("64", string c.Model.HiddenSize)

[<Fact>]
let ``Config.load collects every error with its key instead of throwing`` () =
    match Config.load quickstart [ "training.no_such_key=1"; "online_dpo.beta=abc" ] with
    | Ok _ -> failwith "a config with an unknown key and a non-number beta loaded"
    | Error errors ->
        let text = Config.formatErrors errors
        Assert.Contains("no_such_key", text)
        Assert.Contains("online_dpo.beta", text)
        Assert.True(errors.Length >= 2, text)

[<Fact>]
let ``Config.load of a missing file is an Error naming it`` () =
    match Config.load "configs/does_not_exist.yaml" [] with
    | Ok _ -> failwith "a missing file loaded"
    | Error [ e ] ->
        Assert.Contains("does_not_exist.yaml", e.File)
        Assert.Contains("not found", e.Message)
    | Error es -> failwith $"expected one error, got {es.Length}"

[<Fact>]
let ``Config.update is copy-and-update: the changed key, everything else equal`` () =
    let c = Config.load quickstart [] |> okOrFail
    let same = c |> Config.update [] |> okOrFail
    Assert.Equal(Config.toYaml c, Config.toYaml same)
    let changed = c |> Config.update [ "online_dpo.beta=0.25" ] |> okOrFail
    Assert.Contains("beta: 0.25", Config.toYaml changed)
    Assert.DoesNotContain("beta: 0.25", Config.toYaml c)
    Assert.Equal(string c.Model.HiddenSize, string changed.Model.HiddenSize)

[<Fact>]
let ``Config.update validates again`` () =
    let c = Config.load quickstart [] |> okOrFail
    match c |> Config.update [ "online_dpo.beta=abc" ] with
    | Ok _ -> failwith "beta=abc was accepted"
    | Error errors -> Assert.Contains("online_dpo.beta", Config.formatErrors errors)

// ---- Rollout ----

[<Fact>]
let ``Rollout truncates at the stop token and masks the padding`` () =
    Tensor.within (fun () ->
        let responses = Tensor.idsOfRows [ [| 5L; 9L; 2L; 7L |]; [| 1L; 2L; 3L; 4L |] ]
        let truncated = responses |> Rollout.truncate 9L 0L
        Assert.Equal<float[]>([| 5.0; 9.0; 0.0; 0.0; 1.0; 2.0; 3.0; 4.0 |], Tensor.toArray truncated)
        let lengths = truncated |> Rollout.sequenceLengths 0L
        Assert.Equal<float[]>([| 1.0; 3.0 |], Tensor.toArray lengths)
        let mask = lengths |> Rollout.responseMask 4L
        Assert.Equal<float[]>([| 1.0; 1.0; 0.0; 0.0; 1.0; 1.0; 1.0; 1.0 |], Tensor.toArray mask))

[<Fact>]
let ``Rollout.batch masks the rollout KL past the stop token`` () =
    Tensor.within (fun () ->
        let prompts = Tensor.idsOfRows [ [| 1L; 2L |]; [| 3L; 4L |] ]
        let responses = Tensor.idsOfRows [ [| 5L; 9L; 2L |]; [| 6L; 6L; 6L |] ]
        let lp = Tensor.ofRows [ [| -1.0; -2.0; -3.0 |]; [| -0.5; -0.5; -0.5 |] ]
        let refLp = Tensor.ofRows [ [| -1.5; -1.0; -9.0 |]; [| -1.0; -1.0; -1.0 |] ]
        let batch = Rollout.batch 9L 0L (Rollout.groups 1 2) prompts responses lp refLp (Tensor.ofArray [| 1.0; 0.0 |])
        // Row 0 stops at position 1: its third token is padding and contributes no KL.
        Assert.Equal<float[]>([| 0.5; -1.0; 0.0; 0.5; 0.5; 0.5 |], batch |> Rollout.kl KlEstimator.K1 |> Tensor.toArray)
        Assert.Equal<float[]>([| 1.0; 1.0; 0.0; 1.0; 1.0; 1.0 |], batch |> Rollout.mask |> Tensor.toArray))

[<Fact>]
let ``Rollout.groups numbers consecutive samples of a prompt`` () =
    Assert.Equal<int[]>([| 0; 0; 0; 1; 1; 1 |], Rollout.groups 2 3)

// ---- Loss (hand-computed) ----

[<Fact>]
let ``Loss.dpoWithStats gives TRL's reward statistics`` () =
    Tensor.within (fun () ->
        let loss, stats =
            Loss.dpoWithStats 0.5 (Tensor.ofArray [| -1.0 |]) (Tensor.ofArray [| -3.0 |]) (Tensor.ofArray [| -2.0 |]) (Tensor.ofArray [| -2.0 |])
        // z = (−1 − −3) − (−2 − −2) = 2, βz = 1, −logσ(1) = log(1 + e⁻¹).
        Assert.Equal(log (1.0 + exp -1.0), Tensor.item loss, 12)
        Assert.Equal(0.5, stats.RewardsChosen, 12)
        Assert.Equal(-0.5, stats.RewardsRejected, 12)
        Assert.Equal(1.0, stats.Margins, 12)
        Assert.Equal(1.0, stats.Accuracies, 12))

[<Fact>]
let ``Loss.aggregate reduces per-token terms over the mask`` () =
    Tensor.within (fun () ->
        let terms = Tensor.ofRows [ [| 1.0; 2.0; 100.0 |]; [| 3.0; 5.0; 7.0 |] ]
        let mask = Tensor.maskOfRows [ [| true; true; false |]; [| true; true; true |] ]
        // bnpo: (1 + 2 + 3 + 5 + 7) / 5; grpo: mean(1.5, 5).
        Assert.Equal(18.0 / 5.0, terms |> Loss.aggregate LossAggregation.Bnpo mask |> Tensor.item, 12)
        Assert.Equal((1.5 + 5.0) / 2.0, terms |> Loss.aggregate LossAggregation.Grpo mask |> Tensor.item, 12))

[<Fact>]
let ``Loss.rloo clips the sequence ratio`` () =
    Tensor.within (fun () ->
        let mask = Tensor.maskOfRows [ [| true; true |] ]
        let old = Tensor.ofRows [ [| -1.0; -1.0 |] ]
        // Σ lp − Σ lp_old = 1, ρ = e ≈ 2.718 > 1.2: with A = 2 the clipped term −1.2·2 wins the max.
        let terms = Tensor.ofRows [ [| -0.5; -0.5 |] ] |> Loss.rloo 0.2 mask (Tensor.ofArray [| 2.0 |]) old
        Assert.Equal<int64[]>([| 1L; 1L |], Tensor.shape terms)
        Assert.Equal(-2.4, Tensor.item terms, 12))

[<Fact>]
let ``Advantage.reinforcePlusPlus puts the score on every token before normalising`` () =
    Tensor.within (fun () ->
        let mask = Tensor.maskOfRows [ [| true; true |]; [| true; false |] ]
        let kl = Tensor.ofRows [ [| 0.0; 0.0 |]; [| 0.0; 0.0 |] ]
        let _, returns = Tensor.ofArray [| 1.0; 3.0 |] |> Advantage.reinforcePlusPlus 0.1 1.0 None mask kl
        // No KL and γ = 1: G_t is the score at every active token, 0 at padding.
        Assert.Equal<float[]>([| 1.0; 1.0; 3.0; 0.0 |], Tensor.toArray returns))

// ---- Reward ----

let private sevens =
    Reward.named "sevens" (fun s -> float (s.CompletionText |> Seq.filter ((=) '7') |> Seq.length))

[<Fact>]
let ``Reward.registry holds the F# function beside the built-in gold rewards`` () =
    let registry = Reward.registry [ sevens ] |> okOrFail
    Assert.True(registry.Contains "sevens")
    Assert.True(registry.Contains "reverse")
    Tensor.within (fun () ->
        let scores = registry.Source("sevens").Score([| Reward.sample "1=" "777" true; Reward.sample "1=" "12" true |])
        Assert.Equal<float[]>([| 3.0; 0.0 |], Tensor.toArray scores))

[<Fact>]
let ``Reward.registry refuses a name twice, naming it`` () =
    match Reward.registry [ sevens; sevens ] with
    | Ok _ -> failwith "a duplicate name was accepted"
    | Error e -> Assert.Contains("'sevens' is already registered", e)
    match Reward.registry [ Reward.named "reverse" (fun _ -> 0.0) ] with
    | Ok _ -> failwith "a built-in name was taken"
    | Error e -> Assert.Contains("'reverse'", e)

[<Fact>]
let ``Reward.registry builds a fresh registry each time`` () =
    let a = Reward.registry [ sevens ] |> okOrFail
    let b = Reward.registry [] |> okOrFail
    Assert.True(a.Contains "sevens")
    Assert.False(b.Contains "sevens")

[<Fact>]
let ``Reward.score applies the function in order`` () =
    Assert.Equal<float list>([ 2.0; 0.0 ], Reward.score sevens [ Reward.sample "" "x77" false; Reward.sample "" "" false ])

// ---- Generate ----

let private tinyModel () = ModelConfig.Llama(260L, 32L, 64L, 1, 2) |> Generate.randomModel 7UL

[<Fact>]
let ``Generate.completions returns n completions per prompt with one logprob per token`` () =
    use model = tinyModel ()
    let sampling = SamplingParams(N = 3, Temperature = 1.0, MaxTokens = 5, Seed = Nullable 11L)
    let generation = GenerationSettings(NumBlocks = Nullable 64L)
    let run () = [ "12="; "345=" ] |> Generate.completions generation sampling (ByteTokenizer()) model |> okOrFail
    let first = run ()
    Assert.Equal(2, first.Length)
    for prompt, group in List.zip [ "12="; "345=" ] first do
        Assert.Equal(3, group.Length)
        for c in group do
            Assert.Equal(prompt, c.Prompt)
            // No stop tokens given: every completion runs to max_tokens.
            Assert.Equal(5, c.TokenIds.Length)
            Assert.False(c.FinishedWithStop)
            Assert.Equal(c.TokenIds.Length, c.Logprobs.Length)
            Assert.All(c.Logprobs, fun lp -> Assert.True(lp <= 0.0f, $"logprob {lp} > 0"))
    // The same seed samples the same tokens.
    let again = run ()
    Assert.Equal<int[] list>(first |> List.collect (List.map _.TokenIds), again |> List.collect (List.map _.TokenIds))

[<Fact>]
let ``Generate.completions greedy samples are identical across n`` () =
    use model = tinyModel ()
    let sampling = SamplingParams(N = 2, Temperature = 0.0, MaxTokens = 4)
    match [ "7=" ] |> Generate.completions (GenerationSettings(NumBlocks = Nullable 32L)) sampling (ByteTokenizer()) model with
    | Ok [ [ a; b ] ] -> Assert.Equal<int[]>(a.TokenIds, b.TokenIds)
    | other -> failwith $"expected one prompt with two completions, got {other}"

[<Fact>]
let ``Generate.completions turns invalid sampling into an Error`` () =
    use model = tinyModel ()
    match [ "1=" ] |> Generate.completions (GenerationSettings(NumBlocks = Nullable 16L)) (SamplingParams(N = 0, Temperature = 1.0)) (ByteTokenizer()) model with
    | Ok _ -> failwith "N = 0 was accepted"
    | Error message -> Assert.False(String.IsNullOrWhiteSpace message)

// ---- Train ----

[<Fact>]
let ``Train.run trains with the online loop and returns one record per logged step`` () =
    let dir = Path.Combine(Path.GetTempPath(), "rlhf-fs-train-" + Guid.NewGuid().ToString("N"))
    let c = Config.load quickstart [ "training.max_steps=2"; "training.logging_steps=1"; $"training.output_dir={dir}" ] |> okOrFail
    match Train.run c with
    | Ok outcome ->
        Assert.Equal<int64 list>([ 1L; 2L ], outcome.History |> List.map (fun r -> r.Step))
        Assert.All(outcome.History, fun r -> Assert.True(r.Values.ContainsKey "objective/scores"))
        Assert.True(File.Exists(Path.Combine(outcome.OutputDir, "metrics.jsonl")))
        Directory.Delete(dir, true)
    | Error f -> failwith f.Message

[<Fact>]
let ``Train.history reads a metrics file and names a missing one`` () =
    let dir = Directory.CreateTempSubdirectory("rlhf-fsharp-")
    try
        let path = Path.Combine(dir.FullName, "metrics.jsonl")
        match Train.history path with
        | Error e -> Assert.Contains("no such metrics file", e)
        | Ok _ -> failwith "a missing file read as a history"
        File.WriteAllLines(path, [ """{"step": 1, "episode": 8, "loss": 0.5}"""; """{"step": 2, "episode": 16, "loss": 0.25}""" ])
        let h = Train.history path |> okOrFail
        Assert.Equal<int64 list>([ 1L; 2L ], h |> List.map _.Step)
        Assert.Equal(0.25, h[1].Values["loss"])
    finally dir.Delete true
