// Loaded by every script's first line (`#load "build_check.fsx";; #load "references.fsx";;`): references the assemblies that
// `dotnet build src/Rlhf.FSharp -c Release` puts in src/Rlhf.FSharp/bin/Release/net10.0 (paths relative to this file,
// so nothing machine-specific), and points the binding at librlhf_torch.so in the same folder. build_check.fsx runs
// first, in its own interaction, and names that command when the build is missing.
#r "../src/Rlhf.FSharp/bin/Release/net10.0/Rlhf.FSharp.dll"
#r "../src/Rlhf.FSharp/bin/Release/net10.0/Rlhf.Torch.dll"
#r "../src/Rlhf.FSharp/bin/Release/net10.0/Rlhf.Core.dll"
#r "../src/Rlhf.FSharp/bin/Release/net10.0/Rlhf.Shell.dll"
#r "../src/Rlhf.FSharp/bin/Release/net10.0/LanguageExt.Core.dll"
#r "../src/Rlhf.FSharp/bin/Release/net10.0/ScottPlot.dll"

/// Where the built assemblies and the native library are.
let rlhfBuildDir = System.IO.Path.GetFullPath(System.IO.Path.Combine(__SOURCE_DIRECTORY__, "../src/Rlhf.FSharp/bin/Release/net10.0"))

// The binding looks in RLHF_NATIVE_DIR first: under dotnet fsi the app folder is the SDK's, not ours.
if isNull (System.Environment.GetEnvironmentVariable "RLHF_NATIVE_DIR") then
    System.Environment.SetEnvironmentVariable("RLHF_NATIVE_DIR", rlhfBuildDir)

/// The repository root (for configs/).
let repoRoot = System.IO.Path.GetFullPath(System.IO.Path.Combine(__SOURCE_DIRECTORY__, ".."))
