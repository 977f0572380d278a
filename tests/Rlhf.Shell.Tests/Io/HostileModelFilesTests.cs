using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Rlhf.Core.Models;
using Rlhf.Shell.Io;

namespace Rlhf.Shell.Tests.Io;

using Torch = Rlhf.Torch.Torch;

/// <summary>
/// A corpus of hostile model files written by the tests — safetensors headers, config.json, the shard index — each refused
/// with one typed error naming the file and the tensor or key, before anything is allocated for what the file claims.
/// </summary>
public class HostileModelFilesTests
{
    private static byte[] Safetensors(byte[] header, int dataBytes)
    {
        var b = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)header.Length);
        header.CopyTo(b, 8);
        return b;
    }

    private static byte[] Safetensors(string header, int dataBytes) => Safetensors(Encoding.UTF8.GetBytes(header), dataBytes);

    public static TheoryData<string, byte[], string?, string> HostileSafetensors() => new()
    {
        // shape whose element count fits in 64 bits but whose byte size (×8 for F64) does not
        { "byte size overflows", Safetensors("{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", 8), "w", "overflows" },
        { "element count overflows", Safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8), "w", "overflows" },
        { "invalid UTF-8 in a name", Safetensors([.. "{\""u8, 0xFF, 0xFE, .. "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"u8], 1), null, "not valid UTF-8" },
        { "header length past the limit", Safetensors("{}", 0) is var b && BinaryPrimitives.TryWriteUInt64LittleEndian(b, InputLimits.SafetensorsHeaderBytes + 1) ? b : [], null, "100 MB" },
        { "end offset past the data", Safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,9000000000000000000]}}", 8), "w", "past the end" },
        { "negative offset", Safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[-8,0]}}", 8), "w", "not a valid range" },
        { "offsets as strings", Safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[\"0\",\"8\"]}}", 8), "w", "must be integers" },
        { "fractional offsets", Safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8.5]}}", 8), "w", "must be integers" },
        { "negative dimension", Safetensors("{\"w\":{\"dtype\":\"U8\",\"shape\":[-8],\"data_offsets\":[0,8]}}", 8), "w", "non-negative integer" },
        { "nesting past the depth limit", Safetensors(new string('[', 1000) + new string(']', 1000), 0), null, "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(HostileSafetensors))]
    public void Hostile_safetensors_are_one_error_naming_the_file_and_tensor(string what, byte[] bytes, string? tensor, string expected)
    {
        using var dir = new TempDir();
        var path = dir.File("model.safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<SafetensorsException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal(path, e.FilePath);
        Assert.Equal(tensor, e.Tensor);
        Assert.StartsWith(path + ":", e.Message);
        Assert.True(e.Message.Contains(expected, StringComparison.Ordinal), $"{what}: {e.Message}");
    }

    private const string Llama = "\"model_type\": \"llama\", \"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"vocab_size\": 37";

    public static TheoryData<string, string, string> HostileConfigs() => new()
    {
        { "{" + Llama + ", \"eos_token_id\": \"2\"}", "'eos_token_id'", "an integer" },
        { "{" + Llama + ", \"eos_token_id\": [\"2\", 3]}", "'eos_token_id'", "a list of integers" },
        { "{" + Llama + ", \"bos_token_id\": 1.5}", "'bos_token_id'", "an integer" },
        { "{" + Llama + ", \"architectures\": 7}", "'architectures'", "a list of strings" },
        { "{" + Llama + ", \"architectures\": [\"LlamaForCausalLM\", 3]}", "'architectures'", "a list of strings" },
        { "{\"model_type\": 5}", "'model_type'", "a string" },
        { "{\"model_type\": \"llama\", \"num_hidden_layers\": \"two\"}", "'num_hidden_layers'", "an integer" },
        { "{\"model_type\": \"llama\", \"num_hidden_layers\": 100000000}", "num_hidden_layers", "InputLimits.Layers" },
        { "{" + Llama + ", \"vocab_size\": 37}", "config.json", "invalid JSON" },
        { "[" + Llama.Replace(": ", ", ") + "]", "JSON object", "expected" },
        { new string('[', 1000) + new string(']', 1000), "depth", "invalid JSON" },
    };

    [Theory]
    [MemberData(nameof(HostileConfigs))]
    public void Hostile_config_json_is_one_error_naming_the_file_and_key(string json, string key, string expected)
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<HfFormatException>(() => HfConfig.Read(path));
        Assert.Equal(path, e.FilePath);
        Assert.StartsWith(path + ":", e.Message);
        Assert.Contains(key, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_config_json_that_is_not_utf8_or_past_the_size_limit_names_the_file()
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        File.WriteAllBytes(path, [.. "{\"model_type\": \"ll"u8, 0xC3, 0x28, .. "ama\"}"u8]);
        Assert.Contains("not valid UTF-8", Assert.Throws<HfFormatException>(() => HfConfig.Read(path)).Message);
        using (var f = File.Create(path)) f.SetLength(InputLimits.ConfigJsonBytes + 1);
        var big = Assert.Throws<HfFormatException>(() => HfConfig.Read(path));
        Assert.Equal(path, big.FilePath);
        Assert.Contains("limit", big.Message);
    }

    /// <summary>A one-layer Llama saved as a Hugging Face directory, whose config.json the test then edits.</summary>
    private static string OneLayerModel(TempDir dir, Action<JsonObject> edit)
    {
        using var scope = Torch.NewScope();
        var m = dir.File("m");
        using (var w = ModelInit.Random(ModelConfig.Llama(37, 16, 24, 1, 4), 1)) HfModelDirectory.Save(m, w);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(m, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(m, "config.json"), config.ToJsonString());
        return m;
    }

    [Fact]
    public void A_config_naming_more_layers_than_the_weights_hold_is_reported_before_any_layer_is_planned()
    {
        using var dir = new TempDir();
        // Under the limit, so the count is compared with the tensor names in the safetensors header: 500,000 layers would
        // need millions of expected-shape entries before the old mismatch report.
        var m = OneLayerModel(dir, c => c["num_hidden_layers"] = 500_000);
        var e = Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(m).Dispose());
        Assert.Equal(Path.Combine(m, "config.json"), e.FilePath);
        Assert.Contains("500000 layers", e.Message);
        Assert.Contains("the weights hold 1 (model.layers.0", e.Message);

        var huge = OneLayerModel(dir, c => c["num_hidden_layers"] = 100_000_000);
        Assert.Contains("InputLimits.Layers", Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(huge).Dispose()).Message);
    }

    [Fact]
    public void A_shard_index_that_is_not_an_object_of_file_names_names_the_index()
    {
        using var dir = new TempDir();
        var m = OneLayerModel(dir, _ => { });
        var index = Path.Combine(m, HfModelDirectory.IndexFile);
        foreach (var (json, expected) in new[]
                 {
                     ("[1, 2]", "expected a JSON object"),
                     ("{\"weight_map\": {\"a\": 1}}", "not a file name"),
                     ("{\"weight_map\": {\"a\": \"../x.safetensors\"}}", "outside the directory"),
                     ("{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}", "invalid JSON"),
                 })
        {
            File.WriteAllText(index, json);
            var e = Assert.Throws<HfFormatException>(() => HfModelDirectory.Load(m).Dispose());
            Assert.Equal(index, e.FilePath);
            Assert.Contains(expected, e.Message);
        }
    }
}
