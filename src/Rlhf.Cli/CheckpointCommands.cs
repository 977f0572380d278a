using System.CommandLine;
using Rlhf.Shell.Engine;
using Rlhf.Shell.Io;
using Rlhf.Torch;

namespace Rlhf.Cli;

/// <summary><c>rlhf checkpoint …</c>: tools over sharded engine checkpoints.</summary>
public static class CheckpointCommands
{
    /// <summary>Builds <c>rlhf checkpoint consolidate &lt;dir&gt; --output &lt;hf dir&gt; [--tag T] [--dtype fp32|bf16|fp16] [--config-from DIR]</c>.</summary>
    public static Command Build()
    {
        var dir = new Argument<string>("checkpoint-dir") { Description = "the directory holding 'latest' and global_step<N>/" };
        var output = new Option<string>("--output") { Description = "Hugging Face directory to write (model.safetensors)", Required = true };
        var tag = new Option<string?>("--tag") { Description = "which checkpoint (default: the one 'latest' names)" };
        var dtype = new Option<string>("--dtype") { Description = "fp32 (default, like zero_to_fp32), bf16 or fp16", DefaultValueFactory = _ => "fp32" };
        dtype.AcceptOnlyFromAmong("fp32", "float32", "bf16", "bfloat16", "fp16", "float16");
        var configFrom = new Option<string?>("--config-from") { Description = "copy config.json (and nothing else) from this directory" };
        var consolidate = new Command("consolidate", "rebuild full weights from the shards of any ZeRO stage and world size (DeepSpeed's zero_to_fp32)")
        {
            dir, output, tag, dtype, configFrom,
        };
        consolidate.SetAction(r => Consolidate(r.GetValue(dir)!, r.GetValue(output)!, r.GetValue(tag), r.GetValue(dtype)!, r.GetValue(configFrom), r.InvocationConfiguration.Output));
        return new Command("checkpoint", "Sharded checkpoint tools (consolidate into a Hugging Face directory).") { consolidate };
    }

    /// <summary>Consolidates checkpoint <paramref name="tag"/> (default: latest) of <paramref name="checkpointDir"/> into a Hugging Face directory.</summary>
    public static int Consolidate(string checkpointDir, string outputDir, string? tag, string dtype, string? configFrom, TextWriter output)
    {
        var st = dtype switch
        {
            "fp32" or "float32" => ScalarType.Float32,
            "bf16" or "bfloat16" => ScalarType.BFloat16,
            "fp16" or "float16" => ScalarType.Float16,
            _ => throw new ArgumentException($"--dtype {dtype}: use fp32, bf16 or fp16"),
        };
        if (!Directory.Exists(checkpointDir)) throw new DirectoryNotFoundException($"{checkpointDir}: no such checkpoint directory");
        if (configFrom is not null && !File.Exists(Path.Combine(configFrom, "config.json")))
            throw new FileNotFoundException($"--config-from {configFrom}: no config.json there", Path.Combine(configFrom, "config.json"));
        using var scope = Rlhf.Torch.Torch.NewScope();
        var weights = Checkpoint.Consolidate(checkpointDir, tag, st);
        new SafetensorsWeightWriter(configFrom).Write(outputDir, weights);
        output.WriteLine($"wrote {weights.Count} tensors ({weights.Sum(w => w.Value.NumEl):N0} elements, {st}) to {outputDir}");
        return 0;
    }
}
