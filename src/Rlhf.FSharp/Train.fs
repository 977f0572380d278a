/// Training from F#: `Train.run config` runs the same online loop as `rlhf train` and returns the metrics history.
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Train

open Rlhf.Settings
open Rlhf.Shell.Telemetry
open Rlhf.Shell.Training.Rewards

/// Why a run did not produce a history.
type Failure =
    /// This build has no online trainer to run (nothing was trained).
    | TrainerUnavailable of message: string
    /// The trainer rejected the config or a reward name, with the message.
    | Rejected of message: string
    /// The run started and failed, with the message.
    | Failed of message: string

    /// The failure as one line for a person.
    member this.Message =
        match this with
        | TrainerUnavailable m -> $"trainer unavailable: {m}"
        | Rejected m -> $"config rejected: {m}"
        | Failed m -> $"training failed: {m}"

/// What a finished run returns.
type Outcome =
    { /// One record per logged step (step, episode, and the metrics by TRL name), in step order.
      History: MetricsRecord list
      /// The run directory (metrics files, checkpoints, the final policy).
      OutputDir: string }

/// The message of a run attempted where the online loop is missing: names what is missing, promises nothing ran.
let unavailableMessage =
    "the online training loop (Rlhf.Shell.Training.Online, the loop behind `rlhf train`) is not part of this build; "
    + "nothing was trained"

/// Runs the online loop of `config` with rewards resolved from `rewards` (see `Reward.registry`), returning the metrics
/// history. In this build the online loop has not landed: the result is `Error (TrainerUnavailable …)`, never a fake run.
let runWith (rewards: RewardRegistry) (config: RlhfConfig) : Result<Outcome, Failure> =
    ignore rewards
    ignore config
    Error(TrainerUnavailable unavailableMessage)

/// Runs the online loop of `config` with the built-in rewards (the synthetic tasks' gold rewards), returning the
/// metrics history; see `runWith`.
let run (config: RlhfConfig) : Result<Outcome, Failure> = runWith (RewardRegistry.WithBuiltIns()) config

/// The metrics history a run wrote (its `metrics.jsonl`), in step order; a missing or malformed file is an Error naming it.
let history (metricsPath: string) : Result<MetricsRecord list, string> =
    try
        if not (System.IO.File.Exists metricsPath) then Error $"{metricsPath}: no such metrics file"
        else Ok(MetricsLog.Read metricsPath |> List.ofSeq)
    with e -> Error $"{metricsPath}: {e.Message}"
