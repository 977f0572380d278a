/// Configs as F# values: load a YAML file (with `key=value` overrides) into the generated, validated settings,
/// with every error collected in a list rather than thrown.
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Config

open Rlhf.Settings
open Rlhf.Shell.Config

let private toResult (v: LanguageExt.Validation<ConfigError, RlhfConfig>) : Result<RlhfConfig, ConfigError list> =
    v.Match<Result<RlhfConfig, ConfigError list>>((fun c -> Ok c), (fun errors -> Error(List.ofSeq errors)))

/// Loads, composes, overrides (`"training.max_steps=10"`), validates and resolves a config file; the errors carry
/// file:line:column and the key path.
let load (path: string) (overrides: string list) : Result<RlhfConfig, ConfigError list> =
    ConfigLoader.Load(path, overrides) |> toResult

/// Loads YAML text as if it were a file named `fileName` in the working directory.
let ofYaml (fileName: string) (overrides: string list) (yaml: string) : Result<RlhfConfig, ConfigError list> =
    ConfigLoader.LoadText(yaml, fileName, overrides) |> toResult

/// The settings as YAML that loads back to equal settings (every key, defaults included).
let toYaml (config: RlhfConfig) : string = ConfigLoader.ToYaml config

/// Copy-and-update: the config with `key=value` overrides applied, validated again against the schema and the
/// cross-key checks (the F# counterpart of `{ c with … }` for the generated settings records).
/// `config |> Config.update [ "training.max_steps=5"; "online_dpo.beta=0.2" ]`.
let update (overrides: string list) (config: RlhfConfig) : Result<RlhfConfig, ConfigError list> =
    ConfigLoader.LoadText(ConfigLoader.ToYaml config, "<updated config>", overrides) |> toResult

/// One error per line, as `file:line:column: key: message`.
let formatErrors (errors: ConfigError list) : string = ConfigLoader.Format errors
