/// Generation from F#: prompts in, completions with their logprobs out, over the paged generator
/// (KV cache in blocks, continuous batching; the n samples of a prompt share its blocks).
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Generate

open System
open Rlhf.Core.Models
open Rlhf.Settings
open Rlhf.Shell.Generation
open Rlhf.Shell.Io.Tokenizers

/// One sampled completion of a prompt.
type Completion =
    { /// The prompt text.
      Prompt: string
      /// The completion text, special tokens dropped.
      Text: string
      /// The generated token ids (a stop token that ended it included).
      TokenIds: int[]
      /// Per token log_softmax(logits / (temperature + 1e-7)) of the sampled token: what the trainer recomputes.
      Logprobs: float32[]
      /// True when a stop token ended it, false when it hit the length limit.
      FinishedWithStop: bool }

/// The sampling of a loaded config's `generation` section (n, temperature, top-k/p, min-p, max/min new tokens, stop
/// ids, seed). Build one by hand with `SamplingParams(N = 4, Temperature = 1.0, MaxTokens = 8)`: unset fields take the
/// schema's defaults.
let samplingOf (config: RlhfConfig) : SamplingParams = SamplingParams.From config.Generation

/// A randomly initialised model (std 0.02, float32) for experiments: the same weights for the same seed.
let randomModel (seed: uint64) (config: ModelConfig) : ModelWeights = ModelInit.Random(config.Validated(), seed)

/// Samples `sampling.N` completions of every prompt with `model`, in prompt order (one list per prompt), with the KV
/// cache and scheduler of `generation` (a config's `generation` section, or `GenerationSettings(NumBlocks = 64L)`).
/// Prompts are encoded with `tokenizer` as given (no specials added). Invalid sampling or a failing model is an Error
/// with the message; nothing is thrown.
let completions (generation: GenerationSettings) (sampling: SamplingParams) (tokenizer: ITokenizer) (model: ModelWeights)
                (prompts: string list) : Result<Completion list list, string> =
    try
        sampling.Validate()
        use gen = new PagedGenerator(model, generation, 0)
        let encoded = prompts |> List.map (fun p -> tokenizer.Encode p :> Collections.Generic.IReadOnlyList<int>) |> Array.ofList
        let outputs = gen.Generate(encoded, sampling)
        List.zip prompts (List.ofSeq outputs)
        |> List.map (fun (prompt, o) ->
            o.Outputs
            |> Seq.map (fun c ->
                { Prompt = prompt
                  Text = tokenizer.Decode(ReadOnlySpan<int>(c.TokenIds), true)
                  TokenIds = c.TokenIds
                  Logprobs = c.Logprobs
                  FinishedWithStop = (c.FinishReason = FinishReason.Stop) })
            |> List.ofSeq)
        |> Ok
    with e -> Error e.Message
