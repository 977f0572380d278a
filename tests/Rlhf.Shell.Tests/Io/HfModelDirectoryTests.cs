using Rlhf.Core.Models;
using Rlhf.Shell.Io;
using Rlhf.Torch;

namespace Rlhf.Shell.Tests.Io;

using Torch = Rlhf.Torch.Torch;

public class HfModelDirectoryTests
{
    public static TheoryData<string> Families() => new(["llama", "qwen2", "gpt_neox", "gpt2", "llama-score"]);

    private static ModelConfig Config(string family) => family switch
    {
        "llama" => ModelConfig.Llama(37, 16, 24, 2, 4, kvHeads: 2) with { RopeScaling = new Llama3RopeScaling(8, 1, 4, 64), RopeTheta = 500000 },
        "qwen2" => ModelConfig.Qwen2(37, 16, 24, 2, 4, kvHeads: 1) with { TieWordEmbeddings = true },
        "gpt_neox" => ModelConfig.GptNeox(37, 16, 24, 2, 4) with { RotaryPct = 0.5 },
        "gpt2" => ModelConfig.Gpt2(37, 16, 2, 4, positions: 32),
        "llama-score" => ModelConfig.Llama(37, 16, 24, 1, 4) with { Head = ModelHead.Score, PadTokenId = 0 },
        _ => throw new ArgumentException(family),
    };

    private static Tensor Ids() => Torch.From(new long[] { 1, 5, 9, 36, 0, 2, 3, 4 }, 2, 4);

    [Theory]
    [MemberData(nameof(Families))]
    public void Save_then_load_gives_the_same_model(string family)
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var config = Config(family);
        using var w = ModelInit.Random(config, 1);
        HfModelDirectory.Save(dir.File("m"), w);
        using var back = HfModelDirectory.Load(dir.File("m"));
        Assert.Equal(config, back.Config);
        Assert.Equal(w.Tensors.Keys, back.Tensors.Keys);
        foreach (var (name, t) in w.Tensors) Assert.Equal(t.ToBytes(), back[name].ToBytes());
        if (config.Head == ModelHead.Score)
        {
            var mask = Torch.Ones([2, 4], ScalarType.Int64);
            Assert.True(ScoreHead.AtLastToken(w, Transformer.ForwardHidden(w, Ids()), mask)
                .Equal(ScoreHead.AtLastToken(back, Transformer.ForwardHidden(back, Ids()), mask)));
        }
        else Assert.True(Transformer.Forward(w, Ids()).Equal(Transformer.Forward(back, Ids())));
        // saving what was loaded reproduces the files byte for byte
        HfModelDirectory.Save(dir.File("again"), back);
        foreach (var f in Directory.GetFiles(dir.File("m")))
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(dir.File("again"), Path.GetFileName(f))));
    }

    [Fact]
    public void Sharded_save_writes_an_index_and_loads_back()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        using var w = ModelInit.Random(Config("llama"), 2);
        HfModelDirectory.Save(dir.Path, w, maxShardBytes: 4000);
        var shards = Directory.GetFiles(dir.Path, "model-*-of-*.safetensors").Select(Path.GetFileName).Order().ToList();
        Assert.True(shards.Count > 2, $"expected several shards, got {shards.Count}");
        Assert.Equal($"model-00001-of-{shards.Count:00000}.safetensors", shards[0]);
        Assert.False(File.Exists(dir.File(HfModelDirectory.SingleFile)));
        var index = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(dir.File(HfModelDirectory.IndexFile)))!;
        Assert.Equal(w.Tensors.Values.Sum(t => t.NumBytes), index["metadata"]!["total_size"]!.GetValue<long>());
        Assert.Equal(w.Tensors.Count, index["weight_map"]!.AsObject().Count);
        using var back = HfModelDirectory.Load(dir.Path);
        foreach (var (name, t) in w.Tensors) Assert.True(t.Equal(back[name]), name);
    }

    [Fact]
    public void Bfloat16_round_trips_bit_exactly_and_converts_on_request()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        using var w = ModelInit.Random(Config("gpt_neox") with { TorchDtype = "bfloat16" }, 3, ScalarType.BFloat16);
        HfModelDirectory.Save(dir.Path, w);
        using var same = HfModelDirectory.Load(dir.Path);
        foreach (var (name, t) in w.Tensors)
        {
            Assert.Equal(ScalarType.BFloat16, same[name].Dtype);
            Assert.Equal(t.ToBytes(), same[name].ToBytes());
        }
        using var f32 = HfModelDirectory.Load(dir.Path, ScalarType.Float32);
        foreach (var (name, t) in w.Tensors) Assert.True(t.Float().Equal(f32[name]), name);
    }

    [Fact]
    public void Mismatched_weights_list_every_problem_at_once_naming_the_file()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var config = Config("llama");
        using var w = ModelInit.Random(config, 4);
        HfConfig.Write(dir.File("config.json"), config);
        var tensors = w.Tensors.Where(kv => kv.Key != "model.norm.weight" && kv.Key != "model.layers.1.mlp.up_proj.weight")
            .Select(kv => kv.Key == "lm_head.weight" ? KeyValuePair.Create(kv.Key, Torch.Zeros([36, 16])) : kv)
            .Append(KeyValuePair.Create("model.layers.9.self_attn.q_proj.weight", Torch.Zeros([2])));
        Safetensors.Write(dir.File("model.safetensors"), tensors);
        var ex = Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(dir.Path));
        Assert.Contains(dir.Path, ex.Message);
        Assert.Contains("missing tensors (2): model.layers.1.mlp.up_proj.weight, model.norm.weight", ex.Message);
        Assert.Contains("unexpected tensors (1): model.layers.9.self_attn.q_proj.weight", ex.Message);
        Assert.Contains("tensor 'lm_head.weight' (in model.safetensors) has shape [36, 16], expected [37, 16]", ex.Message);
    }

    [Fact]
    public void Unknown_model_type_and_missing_files_are_clear_errors()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), "{\"model_type\": \"mamba\", \"hidden_size\": 8}");
        var ex = Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(dir.Path));
        Assert.Contains("config.json", ex.Message);
        Assert.Contains("unknown model_type 'mamba'", ex.Message);
        File.WriteAllText(dir.File("config.json"), HfConfig.ToJson(Config("gpt2")));
        Assert.Contains("no weights", Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(dir.Path)).Message);
        File.WriteAllBytes(dir.File("pytorch_model.bin"), [1, 2, 3]);
        Assert.Contains("pytorch_model.bin", Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(dir.Path)).Message);
    }

    [Fact]
    public void A_corrupt_shard_names_its_file()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        using var w = ModelInit.Random(Config("gpt2"), 5);
        HfModelDirectory.Save(dir.Path, w, maxShardBytes: 6000);
        var shard = Directory.GetFiles(dir.Path, "model-00002-*.safetensors").Single();
        var bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..(bytes.Length - 3)]);
        var ex = Assert.Throws<SafetensorsException>(() => HfModelDirectory.Load(dir.Path));
        Assert.Contains(Path.GetFileName(shard), ex.Message);
        Assert.NotNull(ex.Tensor);
    }

    [Fact]
    public void Gpt2_base_checkpoint_names_and_buffers_are_accepted()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var config = Config("gpt2");
        using var w = ModelInit.Random(config, 6);
        HfConfig.Write(dir.File("config.json"), config);
        // openai-community/gpt2 stores GPT2Model names (no "transformer." prefix) plus causal-mask buffers.
        var stored = w.Tensors.Select(kv => KeyValuePair.Create(kv.Key["transformer.".Length..], kv.Value))
            .Append(KeyValuePair.Create("h.0.attn.bias", Torch.Ones([1, 1, 32, 32])))
            .Append(KeyValuePair.Create("h.1.attn.masked_bias", Torch.Scalar(-1e4)));
        Safetensors.Write(dir.File("model.safetensors"), stored);
        using var back = HfModelDirectory.Load(dir.Path);
        Assert.Equal(w.Tensors.Keys, back.Tensors.Keys);
        Assert.True(Transformer.Forward(w, Ids()).Equal(Transformer.Forward(back, Ids())));
    }

    [Fact]
    public void A_failed_save_leaves_the_earlier_one_and_keeps_other_files()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var m = dir.File("m");
        using var w = ModelInit.Random(Config("qwen2"), 7);
        HfModelDirectory.Save(m, w);
        File.WriteAllText(Path.Combine(m, "tokenizer.json"), "{}");
        var before = File.ReadAllBytes(Path.Combine(m, HfModelDirectory.SingleFile));
        using var bad = w.With("model.norm.weight", Torch.Ones([3]));
        Assert.Throws<ArgumentException>(() => HfModelDirectory.Save(m, bad));
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(m, HfModelDirectory.SingleFile)));
        Assert.Single(Directory.GetDirectories(dir.Path));
        using var w2 = ModelInit.Random(Config("qwen2"), 8);
        HfModelDirectory.Save(m, w2);
        Assert.True(File.Exists(Path.Combine(m, "tokenizer.json")));
        Assert.NotEqual(before, File.ReadAllBytes(Path.Combine(m, HfModelDirectory.SingleFile)));
        Assert.Single(Directory.GetDirectories(dir.Path));
    }
}
