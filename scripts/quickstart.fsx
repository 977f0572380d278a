#load "build_check.fsx";; #load "references.fsx";; // finds the built assemblies and librlhf_torch.so (build: dotnet build src/Rlhf.FSharp -c Release)
// A tiny online DPO run on the built-in `reverse` task (configs/quickstart.yaml), printing the gold reward before and after.
// Usage: dotnet fsi scripts/quickstart.fsx [OUTPUT_DIR]   (default: output/quickstart_fsx)

open System.IO
open Rlhf.FSharp

let outDir =
    match fsi.CommandLineArgs |> Array.tail with
    | [| dir |] -> dir
    | _ -> Path.Combine("output", "quickstart_fsx")

let result =
    Config.load (Path.Combine(References.repoRoot, "configs", "quickstart.yaml")) [ "training.max_steps=60"; "training.logging_steps=1"; $"training.output_dir={outDir}" ]
    |> Result.mapError Config.formatErrors
    |> Result.bind (fun config ->
        printfn "task %O, %O, %O layers × %O hidden" config.Data.Task config.Training.Algorithm config.Model.NumHiddenLayers config.Model.HiddenSize
        Train.run config |> Result.mapError (fun f -> f.Message))

match result with
| Ok outcome ->
    // With no reward section, the task's gold reward scores the rollouts: it is logged as objective/scores.
    let gold = outcome.History |> List.choose (fun r -> match r.Values.TryGetValue "objective/scores" with | true, v -> Some(r.Step, v) | _ -> None)
    match gold with
    | [] -> printfn "no objective/scores in the history (%d records) in %s" outcome.History.Length outcome.OutputDir
    | _ ->
        let (s0, v0), (s1, v1) = List.head gold, List.last gold
        printfn "gold reward (objective/scores): before (step %d) %.3f, after (step %d) %.3f" s0 v0 s1 v1
| Error message ->
    eprintfn "%s" message
    exit 1
