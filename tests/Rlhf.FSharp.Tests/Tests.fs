module Rlhf.FSharp.Tests.TensorsTests

open Xunit
open Rlhf.Torch
open Rlhf.FSharp

[<Fact>]
let ``scoped keeps only the result alive`` () =
    let before = Torch.LiveTensors
    use kept = Tensors.scoped (fun () ->
        let a = Torch.Ones([| 3L |])
        let b = Torch.Full([| 3L |], 2.0)
        a + b)
    Assert.Equal(before + 1L, Torch.LiveTensors)
    Assert.Equal<float32[]>([| 3.0f; 3.0f; 3.0f |], kept.ToArray<float32>())
