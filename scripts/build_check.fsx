// Run by every script's first line, in its own interaction (before `;;`), so that a missing build stops with the
// command to run instead of a compiler error about an unresolved #r.
let private builtDir = System.IO.Path.Combine(__SOURCE_DIRECTORY__, "..", "src", "Rlhf.FSharp", "bin", "Release", "net10.0")
for file in [ "Rlhf.FSharp.dll"; "librlhf_torch.so" ] do
    let path = System.IO.Path.GetFullPath(System.IO.Path.Combine(builtDir, file))
    if not (System.IO.File.Exists path) then
        eprintfn "error: %s is missing: build the F# library first with `dotnet build src/Rlhf.FSharp -c Release` (from the repository root)" path
        exit 2
