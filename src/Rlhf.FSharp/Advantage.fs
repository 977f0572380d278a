/// Advantage estimators, curried so the data comes last: `rewards |> Advantage.rloo groupIds`.
/// Shapes: B rows, T tokens; group ids int[B] mark the samples of one prompt (every group ≥ 2 rows).
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Advantage

open Rlhf.Torch
open Rlhf.Core.Advantages
open Rlhf.Core.Losses
open Rlhf.Core.Rollouts

/// GAE (Schulman et al. 2016): δ_t = r_t + γ V_{t+1} − V_t (V_T = 0), A_t = δ_t + γλ A_{t+1}, returns = A + V; unwhitened.
/// values [B, T], rewards [B, T] → (advantages [B, T], returns [B, T]).
let gae (gamma: float) (lambda: float) (values: Tensor) (rewards: Tensor) : Tensor * Tensor =
    let r = Gae.Compute(rewards, values, gamma, lambda)
    r.Advantages, r.Returns

/// PPO advantages as TRL PPOv2 computes them: GAE, returns = A + V, then advantages whitened over the response mask.
/// responseMask [B, T], valueMask [B, T], values [B, T], rewards [B, T] → (advantages [B, T], returns [B, T]).
let ppo (gamma: float) (lambda: float) (responseMask: Tensor) (valueMask: Tensor) (values: Tensor) (rewards: Tensor) : Tensor * Tensor =
    let r = Ppo.Advantages(rewards, values, responseMask, valueMask, gamma, lambda, false)
    r.Advantages, r.Returns

/// Discounted reward-to-go G_t = m_t r_t + γ G_{t+1} (OpenRLHF `get_cumulative_returns`). mask [B, T], rewards [B, T] → [B, T].
let discountedReturns (gamma: float) (mask: Tensor) (rewards: Tensor) : Tensor = DiscountedReturns.Compute(rewards, mask, gamma)

/// RLOO (Ahmadian et al. 2024): A_i = R_i − mean of the other samples of i's prompt; sums to zero per group.
/// groupIds int[B], rewards [B] → [B].
let rloo (groupIds: int[]) (rewards: Tensor) : Tensor = GroupAdvantages.LeaveOneOut(rewards, groupIds)

/// GRPO (Shao et al. 2024): A = (r − mean_group r) / (s + 1e-4), s the group std (Bessel), the batch std, or 1.
/// groupIds int[B], rewards [B] → [B].
let grpo (scaling: GroupScaling) (groupIds: int[]) (rewards: Tensor) : Tensor = GroupAdvantages.Grpo(rewards, groupIds, scaling)

/// REINFORCE++ (OpenRLHF): token rewards −kl_coef·kl_t plus the score at the last token (after subtracting the group mean
/// score when group ids are given), discounted returns, then batch-normalised over the mask.
/// groupIds int[B] option, mask [B, T], kl [B, T], scores [B] → (advantages [B, T], returns [B, T]).
let reinforcePlusPlus (klCoef: float) (gamma: float) (groupIds: int[] option) (mask: Tensor) (kl: Tensor) (scores: Tensor) : Tensor * Tensor =
    let ids: System.Collections.Generic.IReadOnlyList<int> | null =
        match groupIds with
        | Some g -> g
        | None -> null
    let r = ReinforcePlusPlus.Advantages(kl, scores, mask, klCoef, gamma, ids, System.Nullable(), true)
    r.Advantages, r.Returns

/// Whitening over active entries (TRL `masked_whiten`): (x − μ)·rsqrt(σ² + 1e-8) with Bessel's σ²; 0 at masked positions.
/// mask [..], x [..] → [..].
let whiten (mask: Tensor) (x: Tensor) : Tensor = Masked.Whiten(x, mask, true)

/// Masked mean over active entries. mask [..], x [..] → scalar.
let maskedMean (mask: Tensor) (x: Tensor) : Tensor = Masked.Mean(x, mask)

/// Masked variance (Bessel) over active entries. mask [..], x [..] → scalar.
let maskedVar (mask: Tensor) (x: Tensor) : Tensor = Masked.Var(x, mask, true)
