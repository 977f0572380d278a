/// F# face of Rlhf: idiomatic modules over Rlhf.Core and Rlhf.Shell.
module Rlhf.FSharp.Tensors

open Rlhf.Torch

/// Runs `f` inside a tensor scope; every tensor created inside is disposed at the end
/// unless `f` returns it (the result is moved to the outer scope).
let scoped (f: unit -> Tensor) : Tensor =
    use scope = Torch.NewScope()
    let result = f ()
    result.MoveToOuter()
