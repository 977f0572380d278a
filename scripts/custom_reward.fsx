#load "build_check.fsx";; #load "references.fsx";; // finds the built assemblies and librlhf_torch.so (build: dotnet build src/Rlhf.FSharp -c Release)
// A reward written in F# (the share of sevens in the completion) trains the quickstart policy with online DPO.
// Usage: dotnet fsi scripts/custom_reward.fsx [OUTPUT_DIR]   (default: output/custom_reward)

open System.IO
open Rlhf.FSharp

let outDir =
    match fsi.CommandLineArgs |> Array.tail with
    | [| dir |] -> dir
    | _ -> Path.Combine("output", "custom_reward")

/// The share of the completion's characters that are the digit 7, plus 0.2 for ending with the stop token.
let sevens =
    Reward.named "sevens" (fun s ->
        let text = s.CompletionText
        let share = if text.Length = 0 then 0.0 else float (text |> Seq.filter ((=) '7') |> Seq.length) / float text.Length
        share + (if s.FinishedWithStop then 0.2 else 0.0))

for completion, stopped in [ "7777", true; "1737", false; "1234", true ] do
    let score = Reward.score sevens [ Reward.sample "3141=" completion stopped ] |> List.head
    printfn "sevens(%s, stopped=%b) = %.3f" completion stopped score

let result =
    Reward.registry [ sevens ]
    |> Result.mapError (fun e -> $"reward registry: {e}")
    |> Result.bind (fun registry ->
        Config.load (Path.Combine(References.repoRoot, "configs", "quickstart.yaml"))
            [ "reward.function=sevens"; "training.max_steps=40"; "training.logging_steps=1"; $"training.output_dir={outDir}" ]
        |> Result.mapError Config.formatErrors
        |> Result.bind (fun config -> Train.runWith registry config |> Result.mapError (fun f -> f.Message)))

match result with
| Ok outcome ->
    let scores = outcome.History |> List.choose (fun r -> match r.Values.TryGetValue "objective/scores" with | true, v -> Some(r.Step, v) | _ -> None)
    match scores with
    | [] -> printfn "no objective/scores in the history (%d records)" outcome.History.Length
    | _ ->
        let (s0, v0), (s1, v1) = List.head scores, List.last scores
        printfn "sevens reward: step %d %.3f -> step %d %.3f" s0 v0 s1 v1
| Error message ->
    eprintfn "%s" message
    exit 1
