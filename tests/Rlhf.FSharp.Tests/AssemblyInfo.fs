module Rlhf.FSharp.Tests.AssemblyInfo

open Xunit

// Several tests assert on Torch.LiveTensors, a process-wide count of native tensors: tests running side by side would
// count each other's tensors, so this assembly runs its tests one at a time.
[<assembly: CollectionBehavior(DisableTestParallelization = true)>]
do ()
