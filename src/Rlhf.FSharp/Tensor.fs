/// Tensor helpers for F#: scopes that free native memory, and conversions between tensors and F# arrays.
/// Arrays cross as float (float64) so hand-made inputs and read-back values need no casts.
[<RequireQualifiedAccess>]
module Rlhf.FSharp.Tensor

open Rlhf.Torch

/// Runs `f` inside a tensor scope: every tensor created inside is disposed at the end, except the
/// result, which moves to the enclosing scope.
let scoped (f: unit -> Tensor) : Tensor =
    use scope = Torch.NewScope()
    let result = f ()
    result.MoveToOuter()

/// Runs `f` inside a tensor scope and returns its plain .NET result; every tensor created inside is disposed.
let within (f: unit -> 'T) : 'T =
    use scope = Torch.NewScope()
    f ()

/// A float64 vector from an array: [n] → tensor [n].
let ofArray (xs: float[]) : Tensor = Torch.From<float>(xs)

/// A boolean vector (a mask: true = active) from an array: [n] → bool [n].
let ofBools (xs: bool[]) : Tensor = Torch.From<bool>(xs)

/// A float64 matrix from a rectangular array: [n, m] → tensor [n, m].
let ofArray2D (xs: float[,]) : Tensor = Torch.From<float>(xs)

/// A float64 matrix from rows of equal length: n rows of m → tensor [n, m]; ragged rows are an ArgumentException.
let ofRows (rows: float[] list) : Tensor =
    match rows with
    | [] -> invalidArg (nameof rows) "ofRows needs at least one row"
    | first :: _ ->
        rows |> List.iteri (fun i r ->
            if r.Length <> first.Length then
                invalidArg (nameof rows) $"row {i} has {r.Length} values; row 0 has {first.Length}")
        Torch.From<float>(Array.concat rows, int64 rows.Length, int64 first.Length)

/// A boolean mask [n, m] from rows of equal length (true = active token).
let maskOfRows (rows: bool[] list) : Tensor =
    match rows with
    | [] -> invalidArg (nameof rows) "maskOfRows needs at least one row"
    | first :: _ ->
        rows |> List.iteri (fun i r ->
            if r.Length <> first.Length then
                invalidArg (nameof rows) $"row {i} has {r.Length} values; row 0 has {first.Length}")
        Torch.From<bool>(Array.concat rows, int64 rows.Length, int64 first.Length)

/// An int64 tensor (token ids) from rows of equal length: [n, m].
let idsOfRows (rows: int64[] list) : Tensor =
    match rows with
    | [] -> invalidArg (nameof rows) "idsOfRows needs at least one row"
    | first :: _ -> Torch.From<int64>(Array.concat rows, int64 rows.Length, int64 first.Length)

/// The shape of a tensor, outermost dimension first.
let shape (t: Tensor) : int64[] = t.Shape

/// Every element (row-major) as float64, whatever the tensor's dtype; detached from autograd.
let toArray (t: Tensor) : float[] =
    within (fun () -> t.Detach().To(ScalarType.Float64).ToArray<float>())

/// A rank-2 tensor as a float64 matrix; any other rank is an ArgumentException naming the shape.
let toArray2D (t: Tensor) : float[,] =
    let s = t.Shape
    if s.Length <> 2 then
        let dims = s |> Array.map string |> String.concat ", "
        invalidArg (nameof t) $"toArray2D needs a rank-2 tensor; got shape [{dims}]"
    let flat = toArray t
    let cols = int s[1]
    Array2D.init (int s[0]) cols (fun i j -> flat[i * cols + j])

/// The single element of a tensor as float64.
let item (t: Tensor) : float = t.Item()
