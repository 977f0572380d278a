using Rlhf.Torch;
using Rlhf.Torch.Distributed;

namespace Rlhf.Torch.Tests;

using Torch = Rlhf.Torch.Torch;

/// <summary>Checkpoint shard files (a pickled dict of named tensors): exact round trip in order, no leaked handles, errors that name the file.</summary>
public class ShardFileTests
{
    private static string TempFile(string name)
    {
        var d = Path.Combine(Path.GetTempPath(), "rlhf-shard-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return Path.Combine(d, name);
    }

    [Fact]
    public void Save_then_load_returns_every_tensor_bit_exact_in_file_order_and_leaks_no_handle()
    {
        var path = TempFile("shard.pt");
        var before = Torch.LiveTensors;
        using (var scope = Torch.NewScope())
        {
            using var gen = new Generator(3);
            var tensors = new List<KeyValuePair<string, Tensor>>
            {
                new("zeta.masters", Torch.Randn([5, 3], gen, ScalarType.Float32)),
                new("alpha.exp_avg", Torch.Randn([7], gen, ScalarType.Float64)),
                new("m.bf16", Torch.Randn([2, 2], gen).To(ScalarType.BFloat16)),
                new("step", Torch.From([42L], 1)),
                new("empty", Torch.Zeros([0])),
            };
            ShardFile.Save(path, tensors);
            var back = ShardFile.Load(path);
            Assert.Equal(tensors.Select(t => t.Key), back.Select(t => t.Key));
            for (var i = 0; i < tensors.Count; i++)
            {
                Assert.Equal(tensors[i].Value.Dtype, back[i].Value.Dtype);
                Assert.Equal(tensors[i].Value.Shape, back[i].Value.Shape);
                Assert.True(tensors[i].Value.Equal(back[i].Value), $"{tensors[i].Key} differs after the round trip");
            }
        }
        Assert.Equal(before, Torch.LiveTensors);
    }

    [Fact]
    public void A_truncated_file_is_an_error_that_names_it()
    {
        var path = TempFile("truncated.pt");
        using (var scope = Torch.NewScope())
            ShardFile.Save(path, [new("w", Torch.Ones([1000]))]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsAny<Exception>(() => ShardFile.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
    }

    [Fact]
    public void A_zero_length_file_is_an_error_that_names_it()
    {
        var path = TempFile("empty.pt");
        File.WriteAllBytes(path, []);
        var e = Assert.ThrowsAny<Exception>(() => ShardFile.Load(path));
        Assert.Equal(path + ": empty file (zero bytes), not a tensor file", e.Message);
    }

    [Fact]
    public void A_missing_file_is_an_error_that_names_it()
    {
        var path = TempFile("missing.pt");
        var e = Assert.ThrowsAny<Exception>(() => ShardFile.Load(path));
        Assert.Equal(path + ": cannot open", e.Message);
    }
}
