module Rlhf.FSharp.Tests.TensorTests

open System
open Xunit
open Rlhf.Torch
open Rlhf.FSharp

[<Fact>]
let ``scoped keeps only the result alive`` () =
    let before = Torch.LiveTensors
    use kept = Tensor.scoped (fun () ->
        let a = Torch.Ones([| 3L |])
        let b = Torch.Full([| 3L |], 2.0)
        a + b)
    Assert.Equal(before + 1L, Torch.LiveTensors)
    Assert.Equal<float32[]>([| 3.0f; 3.0f; 3.0f |], kept.ToArray<float32>())

[<Fact>]
let ``within frees every tensor it creates and returns the plain value`` () =
    let before = Torch.LiveTensors
    let total = Tensor.within (fun () -> Tensor.ofArray [| 1.5; 2.5; -1.0 |] |> fun t -> t.Sum() |> Tensor.item)
    Assert.Equal(before, Torch.LiveTensors)
    Assert.Equal(3.0, total)

[<Fact>]
let ``rows round-trip through a tensor in row-major order`` () =
    Tensor.within (fun () ->
        let t = Tensor.ofRows [ [| 1.0; 2.0; 3.0 |]; [| 4.0; 5.0; 6.0 |] ]
        Assert.Equal<int64[]>([| 2L; 3L |], Tensor.shape t)
        let m = Tensor.toArray2D t
        Assert.Equal(6.0, m[1, 2])
        Assert.Equal(2.0, m[0, 1])
        Assert.Equal<float[]>([| 1.0; 2.0; 3.0; 4.0; 5.0; 6.0 |], Tensor.toArray t))

[<Fact>]
let ``a boolean mask reads back as 1 and 0`` () =
    Tensor.within (fun () ->
        let m = Tensor.maskOfRows [ [| true; false |]; [| false; true |] ]
        Assert.Equal(ScalarType.Bool, m.Dtype)
        Assert.Equal<float[]>([| 1.0; 0.0; 0.0; 1.0 |], Tensor.toArray m))

[<Fact>]
let ``ragged rows name the row that differs`` () =
    let e = Assert.Throws<ArgumentException>(fun () -> Tensor.ofRows [ [| 1.0; 2.0 |]; [| 3.0 |] ] |> ignore)
    Assert.Contains("row 1 has 1 values; row 0 has 2", e.Message)

[<Fact>]
let ``toArray2D rejects other ranks with the shape`` () =
    Tensor.within (fun () ->
        let e = Assert.Throws<ArgumentException>(fun () -> Tensor.ofArray [| 1.0; 2.0 |] |> Tensor.toArray2D |> ignore)
        Assert.Contains("got shape [2]", e.Message))
