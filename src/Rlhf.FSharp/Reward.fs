/// Rewards written in F#: a named function of a sample (prompt, completion, whether it stopped), registered for the
/// trainer to find under `reward: {function: NAME}`.
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Reward

open Rlhf.Shell.Training.Rewards

/// A reward function with the name a config refers to it by.
type Named =
    { /// The name used in `reward.function` / `reward.functions`.
      Name: string
      /// The score of one sample (higher is better).
      Score: RewardSample -> float }

/// Names an F# reward function: `Reward.named "sevens" (fun s -> …)`.
let named (name: string) (score: RewardSample -> float) : Named = { Name = name; Score = score }

/// A sample from text alone (no token ids), e.g. to try a reward function by hand.
let sample (prompt: string) (completion: string) (finishedWithStop: bool) : RewardSample =
    RewardSample(prompt, [||], completion, [||], finishedWithStop)

/// Scores samples with a reward function, in order.
let score (reward: Named) (samples: RewardSample list) : float list = samples |> List.map reward.Score

/// A fresh registry holding the built-in gold rewards of the synthetic tasks plus `rewards`; a name used twice (or
/// taken by a built-in) is an Error naming it. Each call builds a new registry: nothing is shared between runs.
let registry (rewards: Named list) : Result<RewardRegistry, string> =
    let r = RewardRegistry.WithBuiltIns()
    let rec add = function
        | [] -> Ok r
        | (x: Named) :: _ when System.String.IsNullOrWhiteSpace x.Name -> Error "a reward function needs a non-empty name"
        | x :: _ when r.Contains x.Name ->
            let taken = String.concat ", " r.Names
            Error $"a reward function named '{x.Name}' is already registered; registered: {taken}"
        | x :: rest ->
            r.Register(x.Name, RewardFunction(fun s -> x.Score s)) |> ignore
            add rest
    add rewards
