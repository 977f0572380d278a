/// Training from F#: `Train.run config` runs the same online loop as `rlhf train` and returns the metrics history.
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Train

open Rlhf.Settings
open Rlhf.Shell.Telemetry
open Rlhf.Shell.Training
open Rlhf.Shell.Training.Offline
open Rlhf.Shell.Training.Online
open Rlhf.Shell.Training.Rewards

/// Why a run did not produce a history.
type Failure =
    /// The trainer rejected the config or a reward name, with the message.
    | Rejected of message: string
    /// The run started and failed, with the message.
    | Failed of message: string

    /// The failure as one line for a person.
    member this.Message =
        match this with
        | Rejected m -> $"config rejected: {m}"
        | Failed m -> $"training failed: {m}"

/// What a finished run returns.
type Outcome =
    { /// One record per logged step (step, episode, and the metrics by TRL name), in step order.
      History: MetricsRecord list
      /// The run directory (metrics files, checkpoints, the final policy).
      OutputDir: string }

/// Runs the stage `config` names — the online loop behind `rlhf train` (online DPO, RLOO, best-of-K, GRPO, REINFORCE++)
/// or an offline stage (SFT, reward model, DPO) — with rewards resolved from `rewards` (see `Reward.registry`), writing
/// the run directory `training.output_dir`, and returns the metrics history. A config the trainer refuses is
/// `Error (Rejected …)`; a run that starts and fails is `Error (Failed …)`.
let runWith (rewards: RewardRegistry) (config: RlhfConfig) : Result<Outcome, Failure> =
    let attempt () =
        if OnlinePlan.IsOnline config.Training.Algorithm then
            OnlineTrainer.CheckSupported config
            OnlinePlan.From config |> ignore
        use run = TrainingRun.Open(config)
        if OnlinePlan.IsOnline config.Training.Algorithm then OnlineTrainer.Run(config, run, rewards) |> ignore
        else OfflineStages.Run(config, run) |> ignore
        { History = List.ofSeq run.History; OutputDir = run.Directory }
    try
        Ok(attempt ())
    with
    | :? System.NotSupportedException as e -> Error(Rejected e.Message)
    | :? System.ArgumentException as e -> Error(Rejected e.Message)
    | e -> Error(Failed e.Message)

/// Runs the online loop of `config` with the built-in rewards (the synthetic tasks' gold rewards), returning the
/// metrics history; see `runWith`.
let run (config: RlhfConfig) : Result<Outcome, Failure> = runWith (RewardRegistry.WithBuiltIns()) config

/// The metrics history a run wrote (its `metrics.jsonl`), in step order; a missing or malformed file is an Error naming it.
let history (metricsPath: string) : Result<MetricsRecord list, string> =
    try
        if not (System.IO.File.Exists metricsPath) then Error $"{metricsPath}: no such metrics file"
        else Ok(MetricsLog.Read metricsPath |> List.ofSeq)
    with e -> Error $"{metricsPath}: {e.Message}"
