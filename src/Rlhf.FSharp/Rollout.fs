/// Rollouts as pipelines: group ids, stop-token truncation, masks and logprobs, with TRL's conventions
/// (over Rlhf.Core.Rollouts). B = rows (prompts × samples), T = response length, ctx = prompt length, V = vocabulary.
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Rollout

open Rlhf.Torch
open Rlhf.Core.Rollouts

/// Group ids for `numPrompts` prompts with `samplesPerPrompt` consecutive samples each: [0;0;1;1;…] → int[B].
let groups (numPrompts: int) (samplesPerPrompt: int) : int[] = Groups.Contiguous(numPrompts, samplesPerPrompt)

/// The rows of each group, in group order: int[B] → int[][].
let members (groupIds: int[]) : int[][] = Groups.Members groupIds

/// Responses with everything after the first stop token replaced by the pad token (the stop token stays; TRL
/// `truncate_response`). responses int64 [B, T] → [B, T].
let truncate (stopTokenId: int64) (padTokenId: int64) (responses: Tensor) : Tensor =
    Masking.Truncate(responses, stopTokenId, padTokenId)

/// `seq_len`: the index of each row's last real token (first pad − 1). responses int64 [B, T] → int64 [B].
let sequenceLengths (padTokenId: int64) (responses: Tensor) : Tensor = Masking.SequenceLengths(responses, padTokenId)

/// True at response tokens, up to and including `seq_len`. seqLen int64 [B] → bool [B, T].
let responseMask (responseLength: int64) (sequenceLengths: Tensor) : Tensor = Masking.ResponseMask(sequenceLengths, responseLength)

/// `log_softmax(logits / (temperature + 1e-7))` gathered at the tokens (TRL's convention for rollout, policy and reference).
/// tokens int64 [B, T], logits [B, T, V] → [B, T].
let logprobs (temperature: float) (tokens: Tensor) (logits: Tensor) : Tensor = Logprobs.FromLogits(logits, tokens, temperature)

/// A rollout batch from sampled data: truncates at the stop token, derives `seq_len` and the masks, sets padded
/// logprobs to TRL's invalid value. groupIds int[B], promptIds [B, ctx], responseIds [B, T], logprobs [B, T],
/// refLogprobs [B, T], scores [B] → RolloutBatch (no critic values; every row from policy version 0).
let batch (stopTokenId: int64) (padTokenId: int64) (groupIds: int[]) (promptIds: Tensor) (responseIds: Tensor)
          (logprobs: Tensor) (refLogprobs: Tensor) (scores: Tensor) : RolloutBatch =
    RolloutBatch.Create(promptIds, responseIds, logprobs, refLogprobs, null, scores, groupIds,
                        Array.zeroCreate groupIds.Length, stopTokenId, padTokenId)

/// True at the response tokens of a batch. → bool [B, T].
let mask (batch: RolloutBatch) : Tensor = batch.ResponseMask()

/// The per-token KL of the batch's rollout logprobs from its reference logprobs, 0 at padding. → [B, T].
let kl (estimator: KlEstimator) (batch: RolloutBatch) : Tensor = batch.Kl estimator
