/// FsCheck generators of small, well-conditioned inputs for the loss properties.
module Rlhf.FSharp.Tests.Generators

open FsCheck
open FsCheck.FSharp

/// Rewards of several prompts, k ≥ 2 samples each (group ids contiguous).
type GroupedRewards = { Rewards: float[]; GroupIds: int[] }

/// P preference pairs: per-sequence logps of the policy and the reference, and β.
type PreferencePairs = { PolicyChosen: float[]; PolicyRejected: float[]; RefChosen: float[]; RefRejected: float[]; Beta: float }

/// Rewards and values [B, T] with a discount γ.
type TdCase = { Rewards: float[][]; Values: float[][]; Gamma: float }

/// Values with a mask that keeps at least two different values active.
type MaskedValues = { Values: float[]; Mask: bool[] }

/// Policy and reference logprobs of equal length.
type LogprobPairs = { Logprobs: float[]; RefLogprobs: float[] }

/// Probability ratios, advantages and a clip range ε.
type SurrogateCase = { Ratios: float[]; Advantages: float[]; Epsilon: float }

let private value lo hi = Gen.choose (lo * 100, hi * 100) |> Gen.map (fun i -> float i / 100.0)

let private groupedRewards =
    gen {
        let! sizes = Gen.choose (2, 5) |> Gen.listOf |> Gen.filter (fun l -> not l.IsEmpty && l.Length <= 5)
        let groupIds = sizes |> List.mapi (fun g k -> List.replicate k g) |> List.concat |> Array.ofList
        let! rewards = value -10 10 |> Gen.arrayOfLength groupIds.Length
        return { Rewards = rewards; GroupIds = groupIds }
    }

let private preferencePairs =
    gen {
        let! p = Gen.choose (1, 6)
        let logps = value -30 0 |> Gen.arrayOfLength p
        let! pc = logps
        let! pr = logps
        let! rc = logps
        let! rr = logps
        let! beta = Gen.elements [ 0.01; 0.1; 0.5; 1.0 ]
        return { PolicyChosen = pc; PolicyRejected = pr; RefChosen = rc; RefRejected = rr; Beta = beta }
    }

let private tdCase =
    gen {
        let! b = Gen.choose (1, 3)
        let! t = Gen.choose (1, 6)
        let row = value -5 5 |> Gen.arrayOfLength t
        let! rewards = row |> Gen.arrayOfLength b
        let! values = row |> Gen.arrayOfLength b
        let! gamma = Gen.elements [ 0.0; 0.5; 0.9; 0.99; 1.0 ]
        return { Rewards = rewards; Values = values; Gamma = gamma }
    }

let private maskedValues =
    gen {
        let! n = Gen.choose (2, 20)
        let! values = value -50 50 |> Gen.arrayOfLength n
        let! mask = Gen.elements [ true; false ] |> Gen.arrayOfLength n
        let! i = Gen.choose (0, n - 1)
        let! j = Gen.choose (0, n - 1) |> Gen.filter (fun j -> j <> i)
        let! spread = value 1 20
        // Rows i and j are active and at least 1 apart, so the active variance is well above the whitening epsilon.
        mask[i] <- true
        mask[j] <- true
        values[j] <- values[i] + spread
        return { Values = values; Mask = mask }
    }

let private logprobPairs =
    gen {
        let! n = Gen.choose (1, 12)
        let! lp = value -10 0 |> Gen.arrayOfLength n
        let! refLp = value -10 0 |> Gen.arrayOfLength n
        return { Logprobs = lp; RefLogprobs = refLp }
    }

let private surrogateCase =
    gen {
        let! n = Gen.choose (1, 12)
        let! ratios = value 0 3 |> Gen.arrayOfLength n
        let! advantages = value -5 5 |> Gen.arrayOfLength n
        let! epsilon = Gen.elements [ 0.1; 0.2; 0.3 ]
        return { Ratios = ratios; Advantages = advantages; Epsilon = epsilon }
    }

/// The arbitraries the properties draw from (`[<Property(Arbitrary = [| typeof<Arbitraries> |])>]`).
type Arbitraries =
    static member GroupedRewards() = Arb.fromGen groupedRewards
    static member PreferencePairs() = Arb.fromGen preferencePairs
    static member TdCase() = Arb.fromGen tdCase
    static member MaskedValues() = Arb.fromGen maskedValues
    static member LogprobPairs() = Arb.fromGen logprobPairs
    static member SurrogateCase() = Arb.fromGen surrogateCase
