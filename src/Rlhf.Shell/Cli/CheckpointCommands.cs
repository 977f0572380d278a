using System.CommandLine;
using Rlhf.Shell.Engine;
using Rlhf.Torch;

namespace Rlhf.Shell.Cli;

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
        var configFrom = new Option<string?>("--config-from") { Description = "copy config.json (and nothing else) from this directory" };
        var consolidate = new Command("consolidate", "rebuild full weights from the shards of any ZeRO stage and world size (DeepSpeed's zero_to_fp32)")
        {
            dir, output, tag, dtype, configFrom,
        };
        consolidate.SetAction(r =>
        {
            var st = r.GetValue(dtype) switch
            {
                "fp32" or "float32" => ScalarType.Float32,
                "bf16" or "bfloat16" => ScalarType.BFloat16,
                "fp16" or "float16" => ScalarType.Float16,
                var x => throw new ArgumentException($"--dtype {x}: use fp32, bf16 or fp16"),
            };
            using var scope = Rlhf.Torch.Torch.NewScope();
            var src = r.GetValue(dir)!;
            var weights = Checkpoint.Consolidate(src, r.GetValue(tag), st);
            new Io.SafetensorsWeightWriter(r.GetValue(configFrom)).Write(r.GetValue(output)!, weights);
            Console.WriteLine($"wrote {weights.Count} tensors ({weights.Sum(w => w.Value.NumEl):N0} elements, {st}) to {r.GetValue(output)}");
            return 0;
        });
        return new Command("checkpoint", "Sharded checkpoint tools (consolidate into a Hugging Face directory).") { consolidate };
    }
}
