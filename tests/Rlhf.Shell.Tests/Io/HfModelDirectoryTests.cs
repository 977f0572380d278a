using System.Text.Json.Nodes;
using Rlhf.Core.Models;
using Rlhf.Core.Tests.Models;
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

    /// <summary>
    /// Checkpoints as they are found: a config.json in one layout or the other (written here by hand, as text) and the
    /// intended architecture. The logits of what loads must equal the plain-loop reference under the intended config.
    /// </summary>
    public static TheoryData<string> WildCases() => new(Wild.Keys);

    private static readonly Dictionary<string, (ModelConfig Intended, string RopeKeys)> Wild = new()
    {
        // Llama 3.1 as transformers 5.x writes it: θ and llama3 scaling only inside rope_parameters (hd 4: one medium, one low band)
        ["llama-v5-llama3"] = (ModelConfig.Llama(37, 16, 24, 2, 4, kvHeads: 2, maxPositions: 64) with { RopeTheta = 500000, RopeScaling = new Llama3RopeScaling(8, 1, 4, 16) },
            """ "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16} """),
        // Qwen2.5 style: top-level rope_theta, legacy "type": "yarn"
        ["qwen2-v4-yarn"] = (ModelConfig.Qwen2(37, 32, 24, 1, 2, kvHeads: 1) with { RopeTheta = 1000000, RopeScaling = new YarnRopeScaling(4, 64) },
            """ "rope_theta": 1000000.0, "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64} """),
        // DeepSeek-style yarn: factor from max / original, mscale ratio, betas defaulted
        ["llama-v5-yarn-mscale"] = (ModelConfig.Llama(37, 16, 24, 1, 2, maxPositions: 64) with { RopeScaling = new YarnRopeScaling(4, 16, Mscale: 1, MscaleAllDim: 0.5) },
            """ "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000, "factor": null, "original_max_position_embeddings": 16, "mscale": 1, "mscale_all_dim": 0.5} """),
        ["llama-v4-linear"] = (ModelConfig.Llama(37, 16, 24, 1, 2) with { RopeScaling = new LinearRopeScaling(4) },
            """ "rope_theta": 10000, "rope_scaling": {"rope_type": "linear", "factor": 4.0} """),
        // gpt_neox in the 5.x layout: base, fraction and scaling all in rope_parameters
        ["neox-v5-linear-partial"] = (ModelConfig.GptNeox(37, 32, 24, 1, 2) with { RotaryPct = 0.5, RopeTheta = 1000, RopeScaling = new LinearRopeScaling(2) },
            """ "rope_parameters": {"rope_type": "linear", "factor": 2, "rope_theta": 1000, "partial_rotary_factor": 0.5} """),
        // gpt_neox's own legacy names plus rope_scaling (ignored before): dynamic NTK past max_position_embeddings 4
        ["neox-v4-dynamic"] = (ModelConfig.GptNeox(37, 16, 24, 1, 2, maxPositions: 4) with { RotaryPct = 0.5, RopeTheta = 500, RopeScaling = new DynamicRopeScaling(2) },
            """ "rotary_emb_base": 500, "rotary_pct": 0.5, "rope_scaling": {"type": "dynamic", "factor": 2.0} """),
    };

    private static void WriteConfig(string dir, ModelConfig intended, string ropeKeys)
    {
        var o = JsonNode.Parse(HfConfig.ToJson(intended))!.AsObject();
        foreach (var k in new[] { "rope_theta", "rope_scaling", "rope_parameters", "rotary_pct", "rotary_emb_base" }) o.Remove(k);
        foreach (var (k, v) in JsonNode.Parse("{" + ropeKeys + "}")!.AsObject()) o[k] = v?.DeepClone();
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), o.ToJsonString());
    }

    [Theory]
    [MemberData(nameof(WildCases))]
    public void Wild_rope_layouts_load_and_match_the_plain_loop_reference(string name)
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var (intended, ropeKeys) = Wild[name];
        using var w = ModelInit.Random(intended, 9, ScalarType.Float64, std: 0.4);
        WriteConfig(dir.Path, intended, ropeKeys);
        Safetensors.Write(dir.File("model.safetensors"), w.Tensors);
        using var loaded = HfModelDirectory.Load(dir.Path);
        Assert.Equal(intended, loaded.Config);
        long[] ids = [3, 0, 36, 7, 7, 2];
        var got = Transformer.Forward(loaded, Torch.From(ids, 1, ids.Length)).ToArray<double>();
        var want = new ReferenceModel(new ModelWeights(intended, w.Tensors)).Logits(ids);
        for (var t = 0; t < ids.Length; t++)
            for (var v = 0; v < 37; v++)
                Assert.True(Math.Abs(want[t][v] - got[t * 37 + v]) <= 1e-6 * (1 + Math.Abs(want[t][v])), $"{name} logits[{t}, {v}]: {got[t * 37 + v]} vs {want[t][v]}");
        // the scaling matters for this sequence, so loading it as the default rope would have failed above
        var plain = new ReferenceModel(new ModelWeights(intended with { RopeScaling = null }, w.Tensors)).Logits(ids);
        Assert.True(Enumerable.Range(0, ids.Length).Any(t => Enumerable.Range(0, 37).Any(v => Math.Abs(plain[t][v] - want[t][v]) > 1e-3)), $"{name}: scaling has no effect here");
    }

    [Fact]
    public void Mixed_dtype_checkpoints_load_as_one_model_dtype()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var config = ModelConfig.Llama(37, 16, 24, 2, 4, kvHeads: 2) with { TorchDtype = "bfloat16" };
        using var w = ModelInit.Random(config, 10, std: 0.4);
        // as many hub checkpoints are stored: bf16 matrices, fp32 norm weights
        HfConfig.Write(dir.File("config.json"), config);
        Safetensors.Write(dir.File("model.safetensors"), w.Tensors.Select(kv =>
            KeyValuePair.Create(kv.Key, kv.Key.Contains("norm") ? kv.Value : kv.Value.To(ScalarType.BFloat16))));
        var ids = Torch.From(new long[] { 3, 0, 36, 7, 7, 2 }, 1, 6);

        using var auto = HfModelDirectory.Load(dir.Path);                     // the config's dtype
        Assert.All(auto.Tensors.Values, t => Assert.Equal(ScalarType.BFloat16, t.Dtype));
        using var bf16 = w.Map((_, t) => t.To(ScalarType.BFloat16).DetachFromScope());
        Assert.True(Transformer.Forward(auto, ids).Equal(Transformer.Forward(bf16, ids)));

        using var f32 = HfModelDirectory.Load(dir.Path, ScalarType.Float32); // an explicit dtype wins
        Assert.All(f32.Tensors.Values, t => Assert.Equal(ScalarType.Float32, t.Dtype));
        var got = Transformer.Forward(f32, ids).To(ScalarType.Float64).ToArray<double>();
        var want = new ReferenceModel(f32).Logits([3, 0, 36, 7, 7, 2]);
        for (var t = 0; t < 6; t++)
            for (var v = 0; v < 37; v++)
                Assert.True(Math.Abs(want[t][v] - got[t * 37 + v]) <= 1e-4 * (1 + Math.Abs(want[t][v])), $"logits[{t}, {v}]");

        // no dtype in the config: the first floating-point tensor in name order (lm_head.weight, bf16) decides, as "auto" does
        HfConfig.Write(dir.File("config.json"), config with { TorchDtype = null });
        using var first = HfModelDirectory.Load(dir.Path);
        Assert.All(first.Tensors.Values, t => Assert.Equal(ScalarType.BFloat16, t.Dtype));
    }

    [Fact]
    public void Tensors_transformers_ignores_are_skipped_with_one_warning_and_refused_when_strict()
    {
        using var scope = Torch.NewScope();
        using var dir = new TempDir();
        var config = Config("gpt_neox");
        using var w = ModelInit.Random(config, 11);
        HfConfig.Write(dir.File("config.json"), config);
        // a TRL AutoModelForCausalLMWithValueHead save, with the buffers older GPT-NeoX checkpoints carry
        string[] extras = ["v_head.summary.weight", "v_head.summary.bias", "gpt_neox.layers.0.attention.bias",
                           "gpt_neox.layers.1.attention.masked_bias", "gpt_neox.layers.0.attention.rotary_emb.inv_freq"];
        Safetensors.Write(dir.File("model.safetensors"), w.Tensors
            .Append(KeyValuePair.Create(extras[0], Torch.Ones([1, 16]))).Append(KeyValuePair.Create(extras[1], Torch.Ones([1])))
            .Append(KeyValuePair.Create(extras[2], Torch.Ones([1, 1, 8, 8], ScalarType.Bool))).Append(KeyValuePair.Create(extras[3], Torch.Scalar(-1e9)))
            .Append(KeyValuePair.Create(extras[4], Torch.Ones([2]))));
        var warnings = new List<string>();
        using var back = HfModelDirectory.Load(dir.Path, warn: warnings.Add);
        Assert.Equal(w.Tensors.Keys, back.Tensors.Keys);
        Assert.True(Transformer.Forward(w, Ids()).Equal(Transformer.Forward(back, Ids())));
        var warning = Assert.Single(warnings);
        Assert.Contains("ignoring 5 tensors", warning);
        foreach (var e in extras) Assert.Contains(e, warning);

        var ex = Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(dir.Path, strict: true));
        Assert.Contains("unexpected tensors (5)", ex.Message);
        foreach (var e in extras) Assert.Contains(e, ex.Message);
        // an unknown tensor is never skipped: it may mean a different model
        Safetensors.Write(dir.File("model.safetensors"), w.Tensors.Append(KeyValuePair.Create("gpt_neox.layers.5.mlp.extra.weight", Torch.Ones([2]))));
        Assert.Contains("unexpected tensors (1): gpt_neox.layers.5.mlp.extra.weight", Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(dir.Path)).Message);
    }
}
