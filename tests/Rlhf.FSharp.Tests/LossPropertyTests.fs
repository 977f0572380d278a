/// Properties of the loss and advantage math, each against an independent plain-loop reference or an identity.
module Rlhf.FSharp.Tests.LossPropertyTests

open System
open FsCheck.Xunit
open Rlhf.Core.Advantages
open Rlhf.Core.Rollouts
open Rlhf.FSharp
open Rlhf.FSharp.Tests.Generators

let private close (tol: float) (expected: float) (actual: float) =
    abs (expected - actual) <= tol * (1.0 + abs expected)

let private allClose tol (expected: float[]) (actual: float[]) =
    expected.Length = actual.Length && Array.forall2 (close tol) expected actual

/// −log σ(x), computed stably in plain F#.
let private negLogSigmoid (x: float) = if x >= 0.0 then log (1.0 + exp -x) else -x + log (1.0 + exp x)


[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``DPO equals -log sigmoid(beta z) of a plain-loop logit`` (p: PreferencePairs) =
    Tensor.within (fun () ->
        let loss =
            Loss.dpo p.Beta (Tensor.ofArray p.PolicyChosen) (Tensor.ofArray p.PolicyRejected)
                (Tensor.ofArray p.RefChosen) (Tensor.ofArray p.RefRejected)
            |> Tensor.toArray
        let expected =
            Array.init p.PolicyChosen.Length (fun i ->
                let z = (p.PolicyChosen[i] - p.PolicyRejected[i]) - (p.RefChosen[i] - p.RefRejected[i])
                negLogSigmoid (p.Beta * z))
        allClose 1e-9 expected loss)

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``DPO symmetry: swapping chosen and rejected negates z and shifts the loss by beta z`` (p: PreferencePairs) =
    Tensor.within (fun () ->
        let pc, pr, rc, rr = Tensor.ofArray p.PolicyChosen, Tensor.ofArray p.PolicyRejected, Tensor.ofArray p.RefChosen, Tensor.ofArray p.RefRejected
        let z = Loss.dpoLogits pc pr rc rr |> Tensor.toArray
        let zSwapped = Loss.dpoLogits pr pc rr rc |> Tensor.toArray
        let loss = Loss.dpo p.Beta pc pr rc rr |> Tensor.toArray
        let lossSwapped = Loss.dpo p.Beta pr pc rr rc |> Tensor.toArray
        // logσ(x) − logσ(−x) = x, so L(−z) − L(z) = βz.
        allClose 1e-12 (Array.map (~-) z) zSwapped
        && allClose 1e-9 (Array.map (fun z -> p.Beta * z) z) (Array.map2 (-) lossSwapped loss))

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``RLOO advantages sum to zero in every group and match the leave-one-out loop`` (g: GroupedRewards) =
    Tensor.within (fun () ->
        let a = Tensor.ofArray g.Rewards |> Advantage.rloo g.GroupIds |> Tensor.toArray
        let expected =
            Array.init g.Rewards.Length (fun i ->
                let others = [ for j in 0 .. g.Rewards.Length - 1 do if j <> i && g.GroupIds[j] = g.GroupIds[i] then g.Rewards[j] ]
                g.Rewards[i] - List.average others)
        let groupSums = Array.zip g.GroupIds a |> Array.groupBy fst |> Array.map (snd >> Array.sumBy snd)
        Array.forall (fun s -> abs s < 1e-9) groupSums && allClose 1e-9 expected a)

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``GRPO advantages have zero mean per group and ignore a shift of the rewards`` (g: GroupedRewards) =
    Tensor.within (fun () ->
        let adv rewards = Tensor.ofArray rewards |> Advantage.grpo GroupScaling.Group g.GroupIds |> Tensor.toArray
        let a = adv g.Rewards
        let shifted = adv (g.Rewards |> Array.map (fun r -> r + 7.25))
        let groupMeans = Array.zip g.GroupIds a |> Array.groupBy fst |> Array.map (snd >> Array.averageBy snd)
        Array.forall (fun m -> abs m < 1e-9) groupMeans && allClose 1e-9 a shifted)

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``GAE with lambda 0 equals the one-step TD errors`` (c: TdCase) =
    Tensor.within (fun () ->
        let adv, returns = Tensor.ofRows (List.ofArray c.Rewards) |> Advantage.gae c.Gamma 0.0 (Tensor.ofRows (List.ofArray c.Values))
        let t = c.Rewards[0].Length
        let td =
            [| for b in 0 .. c.Rewards.Length - 1 do
                 for i in 0 .. t - 1 do
                     let next = if i + 1 < t then c.Values[b][i + 1] else 0.0
                     c.Rewards[b][i] + c.Gamma * next - c.Values[b][i] |]
        let valuesFlat = Array.concat c.Values
        allClose 1e-9 td (Tensor.toArray adv) && allClose 1e-9 (Array.map2 (+) td valuesFlat) (Tensor.toArray returns))

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``GAE with lambda 1 and gamma 1 is the Monte Carlo return minus the value`` (c: TdCase) =
    Tensor.within (fun () ->
        let adv, _ = Tensor.ofRows (List.ofArray c.Rewards) |> Advantage.gae 1.0 1.0 (Tensor.ofRows (List.ofArray c.Values))
        let t = c.Rewards[0].Length
        let mc =
            [| for b in 0 .. c.Rewards.Length - 1 do
                 for i in 0 .. t - 1 do
                     Array.sum (c.Rewards[b][i..]) - c.Values[b][i] |]
        allClose 1e-9 mc (Tensor.toArray adv))

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``whitening gives mean 0 and variance 1 over the active entries and 0 elsewhere`` (m: MaskedValues) =
    Tensor.within (fun () ->
        let w = Tensor.ofArray m.Values |> Advantage.whiten (Tensor.ofBools m.Mask) |> Tensor.toArray
        let active = Array.zip m.Mask w |> Array.filter fst |> Array.map snd
        let n = float active.Length
        let mean = Array.average active
        let var = (active |> Array.sumBy (fun x -> (x - mean) ** 2.0)) / (n - 1.0)
        let inactiveZero = Array.zip m.Mask w |> Array.forall (fun (on, x) -> on || x = 0.0)
        // The whitening epsilon (1e-8) under a variance ≥ 0.5/(n−1)·1² leaves var within ~1e-6 of 1.
        abs mean < 1e-9 && abs (var - 1.0) < 1e-6 && inactiveZero)

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``k3 and k2 are never negative, k1 is the log ratio, and all vanish when the policies agree`` (p: LogprobPairs) =
    Tensor.within (fun () ->
        let lp, refLp = Tensor.ofRows [ p.Logprobs ], Tensor.ofRows [ p.RefLogprobs ]
        let k1 = Loss.kl KlEstimator.K1 refLp lp |> Tensor.toArray
        let k2 = Loss.kl KlEstimator.K2 refLp lp |> Tensor.toArray
        let k3 = Loss.kl KlEstimator.K3 refLp lp |> Tensor.toArray
        let same = Loss.kl KlEstimator.K3 lp lp |> Tensor.toArray
        let r = Array.map2 (-) p.Logprobs p.RefLogprobs
        Array.forall (fun k -> k >= 0.0) k3
        && Array.forall (fun k -> k >= 0.0) k2
        && allClose 1e-12 r k1
        && allClose 1e-9 (r |> Array.map (fun r -> exp -r - 1.0 + r)) k3
        && Array.forall ((=) 0.0) same)

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``PPO clipped surrogate equals the plain max of the unclipped and clipped terms`` (c: SurrogateCase) =
    Tensor.within (fun () ->
        let loss = Tensor.ofArray c.Ratios |> Loss.ppoClipped c.Epsilon (Tensor.ofArray c.Advantages) |> Tensor.toArray
        let expected =
            Array.map2 (fun rho a -> max (-a * rho) (-a * Math.Clamp(rho, 1.0 - c.Epsilon, 1.0 + c.Epsilon))) c.Ratios c.Advantages
        allClose 1e-12 expected loss)

[<Property(Arbitrary = [| typeof<Arbitraries> |], QuietOnSuccess = true)>]
let ``GRPO per-token loss with no old logprobs is minus the advantage on every token`` (g: GroupedRewards) =
    Tensor.within (fun () ->
        let adv = Tensor.ofArray g.Rewards |> Advantage.grpo GroupScaling.Group g.GroupIds
        let logprobs = Tensor.ofRows [ for r in g.Rewards -> [| -0.5; r / 20.0 - 1.0; -2.0 |] ]
        let terms = logprobs |> Loss.grpo 0.2 0.0 None None adv |> Tensor.toArray2D
        let a = Tensor.toArray adv
        // ρ = exp(lp − lp.detach()) = 1 exactly, so each term is −A (TRL's one-update-per-generation case).
        Array.forall id [| for i in 0 .. a.Length - 1 do for j in 0 .. 2 do close 1e-12 -a[i] terms[i, j] |])
