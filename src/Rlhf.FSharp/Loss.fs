/// Losses and KL estimators, curried so the data comes last and per-element terms are returned; reduce them with
/// `Loss.aggregate`. Shapes: P preference pairs, B rows, T tokens.
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Loss

open Rlhf.Torch
open Rlhf.Core.Losses
open Rlhf.Core.Rollouts

/// The DPO logit z = (L_c − L_r) − (R_c − R_r) of per-sequence policy (L) and reference (R) logps. All [P] → [P].
let dpoLogits (policyChosen: Tensor) (policyRejected: Tensor) (refChosen: Tensor) (refRejected: Tensor) : Tensor =
    Dpo.Logits(policyChosen, policyRejected, refChosen, refRejected)

/// The per-pair DPO loss of a logit with inverse temperature β (TRL `dpo_loss`): sigmoid −logσ(βz), ipo (z − 1/(2β))²,
/// hinge relu(1 − βz). z [P] → [P].
let dpoOfLogits (lossType: DpoLossType) (beta: float) (z: Tensor) : Tensor = Dpo.PairLoss(z, beta, lossType, 0.0)

/// The per-pair sigmoid DPO loss −logσ(β((L_c − L_r) − (R_c − R_r))) (Rafailov et al. 2023). All [P] → [P].
let dpo (beta: float) (policyChosen: Tensor) (policyRejected: Tensor) (refChosen: Tensor) (refRejected: Tensor) : Tensor =
    dpoLogits policyChosen policyRejected refChosen refRejected |> dpoOfLogits DpoLossType.Sigmoid beta

/// The mean DPO loss with TRL's reward statistics (`rewards/chosen`, `rewards/margins`, …) read once. All [P] → (scalar, stats).
let dpoWithStats (beta: float) (policyChosen: Tensor) (policyRejected: Tensor) (refChosen: Tensor) (refRejected: Tensor) : Tensor * DpoStats =
    let struct (loss, stats) = Dpo.Loss(policyChosen, policyRejected, refChosen, refRejected, beta, DpoLossType.Sigmoid, 0.0)
    loss, stats

/// Per-sequence log-probability Σ_t m_t lp_t. mask [B, T], logprobs [B, T] → [B].
let sequenceLogps (mask: Tensor) (logprobs: Tensor) : Tensor = Dpo.SequenceLogps(logprobs, mask, false)

/// PPO's clipped surrogate per element (rlax `clipped_surrogate_pg_loss`): max(−Aρ, −A clip(ρ, 1 − ε, 1 + ε)).
/// advantages [..], ratio [..] → [..].
let ppoClipped (epsilon: float) (advantages: Tensor) (ratio: Tensor) : Tensor = Ppo.ClippedSurrogate(ratio, advantages, epsilon, epsilon)

/// PPO's per-token clipped policy terms with ρ = exp(lp − lp_old) (TRL PPOv2), 1 at padding.
/// mask [B, T], advantages [B, T], oldLogprobs [B, T], logprobs [B, T] → [B, T].
let ppoPolicy (clipRange: float) (mask: Tensor) (advantages: Tensor) (oldLogprobs: Tensor) (logprobs: Tensor) : Tensor =
    let struct (terms, _) = Ppo.PolicyTerms(logprobs, oldLogprobs, advantages, mask, clipRange, System.Nullable())
    terms

/// GRPO's per-token loss: −min(ρA, clip(ρ, 1 − ε, 1 + ε)A) plus β·k3 when β ≠ 0 (TRL GRPOTrainer); with no old logprobs
/// ρ = 1 and the gradient is A. refLogprobs [B, T] option (needed when β ≠ 0), oldLogprobs [B, T] option,
/// advantages [B], logprobs [B, T] → [B, T].
let grpo (epsilon: float) (beta: float) (refLogprobs: Tensor option) (oldLogprobs: Tensor option) (advantages: Tensor) (logprobs: Tensor) : Tensor =
    Grpo.PerTokenLoss(logprobs, Option.toObj oldLogprobs, advantages, epsilon, epsilon, beta, Option.toObj refLogprobs)

/// RLOO's sequence-level clipped terms, ρ = exp(Σ m lp − Σ m lp_old) (async_rlhf / TRL RLOO).
/// mask [B, T], advantages [B], oldLogprobs [B, T], logprobs [B, T] → [B, 1].
let rloo (epsilon: float) (mask: Tensor) (advantages: Tensor) (oldLogprobs: Tensor) (logprobs: Tensor) : Tensor =
    let struct (terms, _) = Rloo.SequenceTerms(logprobs, oldLogprobs, advantages, mask, epsilon, epsilon)
    terms

/// Reduces per-unit terms (TRL `loss_type`): Grpo (per-row mean, then mean), Bnpo (token mean), DrGrpo, Dapo.
/// mask [N, U], terms [N, U] → scalar.
let aggregate (aggregation: LossAggregation) (mask: Tensor) (terms: Tensor) : Tensor = Aggregation.Reduce(terms, mask, aggregation)

/// Per-token KL estimate of the policy from the reference with r = lp − lp_ref: k1 = r, k2 = r²/2, k3 = exp(−r) − 1 + r
/// (Schulman, "Approximating KL divergence"), unclamped. refLogprobs [B, T], logprobs [B, T] → [B, T].
let kl (estimator: KlEstimator) (refLogprobs: Tensor) (logprobs: Tensor) : Tensor = Kl.Estimate(logprobs, refLogprobs, estimator)
