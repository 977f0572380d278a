#load "build_check.fsx";; #load "references.fsx";; // finds the built assemblies and librlhf_torch.so (build: dotnet build src/Rlhf.FSharp -c Release)
// Evaluates the DPO, PPO and GRPO losses on hand-made inputs and plots them to PNGs with ScottPlot.
// Usage: dotnet fsi scripts/loss_playground.fsx [OUTPUT_DIR]   (default: output/loss_playground)

open System.IO
open Rlhf.Core.Advantages
open Rlhf.Core.Losses
open Rlhf.FSharp
open Rlhf.Shell.Telemetry

let outDir =
    match fsi.CommandLineArgs |> Array.tail with
    | [| dir |] -> dir
    | _ -> Path.Combine("output", "loss_playground")
Directory.CreateDirectory outDir |> ignore

/// Evaluates a tensor function at each x of a grid (a vector in, a vector out) and frees the tensors.
let curve (xs: float[]) (f: Rlhf.Torch.Tensor -> Rlhf.Torch.Tensor) : float[] =
    Tensor.within (fun () -> Tensor.ofArray xs |> f |> Tensor.toArray)

let grid lo hi n = Array.init n (fun i -> lo + (hi - lo) * float i / float (n - 1))

// DPO: the per-pair loss as a function of the implicit reward margin z = (L_c − L_r) − (R_c − R_r).
let zs = grid -6.0 6.0 121
let dpoSeries =
    [ for beta in [ 0.1; 0.5; 1.0; 2.0 ] ->
        PlotSeries($"sigmoid β={beta}", zs, curve zs (Loss.dpoOfLogits DpoLossType.Sigmoid beta)) ]
    @ [ PlotSeries("hinge β=0.5", zs, curve zs (Loss.dpoOfLogits DpoLossType.Hinge 0.5))
        PlotSeries("ipo β=0.5", zs, curve zs (Loss.dpoOfLogits DpoLossType.Ipo 0.5)) ]
let dpoAtZero = curve [| 0.0 |] (Loss.dpoOfLogits DpoLossType.Sigmoid 0.1)
printfn "dpo sigmoid beta=0.1 z=0: %.6f" dpoAtZero[0]

// PPO: the clipped surrogate −min(ρA, clip(ρ, 1 ± ε)A) as a function of the ratio ρ, for A = +1 and A = −1.
let ratios = grid 0.0 2.5 101
let ppoFor a = curve ratios (Loss.ppoClipped 0.2 (Tensor.ofArray (Array.create ratios.Length a)))
let ppoSeries = [ PlotSeries("A = +1", ratios, ppoFor 1.0); PlotSeries("A = −1", ratios, ppoFor -1.0) ]
let ppoAt a rho = (curve [| rho |] (Loss.ppoClipped 0.2 (Tensor.ofArray [| a |])))[0]
printfn "ppo eps=0.2 A=+1 ratio=1.5: %.6f" (ppoAt 1.0 1.5)
printfn "ppo eps=0.2 A=-1 ratio=0.5: %.6f" (ppoAt -1.0 0.5)

// GRPO: group-relative advantages of one prompt's four samples, then each sample's token loss as its ratio moves.
let rewards = [| 1.0; 0.0; 0.0; 1.0 |]
let groupIds = Rollout.groups 1 4
let advantages = Tensor.within (fun () -> Tensor.ofArray rewards |> Advantage.grpo GroupScaling.Group groupIds |> Tensor.toArray)
printfn "grpo advantages of rewards [1; 0; 0; 1]: %s" (advantages |> Array.map (sprintf "%.6f") |> String.concat "; ")
let grpoSeries =
    [ for i in [ 0; 1 ] ->
        let ys =
            Tensor.within (fun () ->
                let logRatio = Tensor.ofRows [ ratios |> Array.map (fun r -> log (max r 1e-6)) ]
                let old = Tensor.ofRows [ Array.zeroCreate ratios.Length ]
                logRatio |> Loss.grpo 0.2 0.0 None (Some old) (Tensor.ofArray [| advantages[i] |]) |> Tensor.toArray)
        PlotSeries($"sample {i} (reward {rewards[i]}, A = {advantages[i]:F3})", ratios, ys) ]

let save (spec: PlotSpec) stem =
    let struct (png, _svg) = Plots.Save(spec, Path.Combine(outDir, stem))
    printfn "wrote %s" png

save (PlotSpec("DPO loss vs margin z", "z", "loss", dpoSeries)) "dpo"
save (PlotSpec("PPO clipped surrogate, ε = 0.2", "ratio ρ", "loss", ppoSeries)) "ppo"
save (PlotSpec("GRPO token loss, rewards [1, 0, 0, 1]", "ratio ρ", "loss", grpoSeries)) "grpo"
